// Which of an instance's addresses the entry gets. Providers report what the cloud says; a prefix
// or a link-local address with a zone can slip through, and neither can be dialled by a sidecar.
import type { MappingConfig } from '../../config/schema.ts';
import type { Instance } from '../model.ts';
import { isIPv4Address, isIPv6Address, isUsableAddress } from './syntax.ts';
import { fail, ok, quote, readTag, type Step } from './step.ts';

/** The address choices of `address.prefer` and the address tag. */
export type AddressChoice = MappingConfig['address']['prefer'];

const CHOICES: readonly AddressChoice[] = ['private-ipv4', 'public-ipv4', 'ipv6', 'first-available'];

type Family = 'private-ipv4' | 'public-ipv4' | 'ipv6';

/** The families an address choice tries, in order. */
const FAMILIES: Readonly<Record<AddressChoice, readonly Family[]>> = {
  'private-ipv4': ['private-ipv4'],
  'public-ipv4': ['public-ipv4'],
  ipv6: ['ipv6'],
  'first-available': ['private-ipv4', 'public-ipv4', 'ipv6'],
};

const FAMILY_WORDS: Record<AddressChoice, string> = {
  'private-ipv4': 'private IPv4 address',
  'public-ipv4': 'public IPv4 address',
  ipv6: 'IPv6 address',
  'first-available': 'private IPv4, public IPv4 or IPv6 address',
};

/**
 * The entry's address. The address tag, when set to a non-blank value, overrides `address.prefer`
 * (values are trimmed and lowercased). Within a family the first usable value wins: IPv4 must be a
 * dotted quad, IPv6 must parse without a zone (`%eth0`) or prefix length; a value with `/` is a
 * prefix, not an address; unspecified addresses (`0.0.0.0`, `::`) are not usable.
 * `first-available` tries private IPv4, then public IPv4, then IPv6.
 */
export function chooseAddress(instance: Instance, rules: MappingConfig['address']): Step<string> {
  const tagged = readTag(instance.tags, rules.tag)?.trim().toLowerCase();
  let choice: AddressChoice = rules.prefer;
  if (tagged !== undefined && tagged !== '') {
    const known = CHOICES.find((c) => c === tagged);
    if (known === undefined) {
      return fail(
        'VMS_SKIP_BAD_ADDRESS_TAG',
        `tag ${rules.tag}: ${quote(readTag(instance.tags, rules.tag) ?? '')} is not an address choice ` +
          '(use private-ipv4, public-ipv4, ipv6 or first-available)',
      );
    }
    choice = known;
  }

  // The reasons are gathered only once a value is unusable: most instances have a usable address
  // at once, and this runs for every instance of every listing.
  let unusable: string[] | undefined;
  for (const family of FAMILIES[choice]) {
    for (const raw of candidates(instance, family)) {
      const value = String(raw).trim();
      if (value === '') continue;
      const inFamily = family === 'ipv6' ? isIPv6Address(value) : isIPv4Address(value);
      if (inFamily && isUsableAddress(value)) return ok(value);
      (unusable ??= []).push(whyUnusable(value, family));
    }
  }

  const why = tagged === undefined || tagged === '' ? `address.prefer is ${rules.prefer}` : `tag ${rules.tag} is ${choice}`;
  const notes = unusable === undefined ? '' : ` (${unusable.slice(0, 3).join('; ')})`;
  const todo =
    choice === 'first-available'
      ? 'give it one'
      : `give it one, or tag it ${rules.tag}=first-available to use any address it has`;
  const usable = unusable === undefined ? '' : 'usable ';
  return fail('VMS_SKIP_NO_ADDRESS', `the instance has no ${usable}${FAMILY_WORDS[choice]} (${why})${notes}; ${todo}`);
}

function candidates(instance: Instance, family: Family): readonly string[] {
  if (family === 'private-ipv4') return instance.privateIPv4s;
  if (family === 'public-ipv4') return instance.publicIPv4s;
  return instance.ipv6s;
}

function whyUnusable(value: string, family: Family): string {
  if (value.includes('/')) return `${quote(value)} is a prefix, not an address`;
  if (family === 'ipv6' && value.includes('%')) return `${quote(value)} carries a zone, which an entry cannot use`;
  if (family === 'ipv6' ? isIPv6Address(value) : isIPv4Address(value)) return `${quote(value)} is the unspecified address`;
  return `${quote(value)} is not an ${family === 'ipv6' ? 'IPv6' : 'IPv4'} address`;
}
