// The Resource Graph side of discovery: one KQL query that joins each selected VM with its network
// interfaces and their public IPs, so that a subscription with thousands of VMs costs a few paged
// requests instead of one per VM or interface. Pure: the query text, and the rows back into VMs.
//
// The query keeps to what Resource Graph supports (where, project, extend, mv-expand, leftouter
// join, at most three joins) and returns one row per VM × interface × IP configuration. Grouping
// happens here rather than with `summarize`, which cannot group by the dynamic `tags`/`zones`.
import type { Problem } from '../../services/model.ts';
import type { AzureIpConfiguration, AzureNicSlot, AzureVm } from './instance.ts';
import { normalizeResourceId } from './resource-id.ts';

/** One row of the discovery query, as Resource Graph answers with `resultFormat: objectArray`. */
export interface GraphRow {
  id: string;
  name: string;
  location: string;
  zones: string[] | null;
  tags: Record<string, string> | null;
  powerState: string;
  /** The interface id as the VM refers to it, lowercased. */
  nicKey: string;
  nicRefPrimary: boolean | null;
  /** The interface's own id; empty or null when no interface matched (the join is left outer). */
  nicId: string | null;
  nicPrimary: boolean | null;
  ipName: string | null;
  ipPrimary: boolean | null;
  privateIp: string | null;
  privatePrefixLength: number | null;
  subnetId: string | null;
  publicIp: string | null;
}

/** A VM read from rows, stamped with the time of the page carrying its first row. */
export interface GraphVm {
  vm: AzureVm;
  observedAt: string;
}

/** A KQL string literal that stays literal whatever the text holds. */
export function kqlString(value: string): string {
  return `@"${value.replaceAll('"', '""')}"`;
}

/**
 * The discovery query for VMs that carry the selector tag. Only the tag key is filtered on, as with
 * every provider: mapping compares the value (trimmed, in any case), and a listing narrower than
 * mapping would delete entries that an event just created. Ids are joined lowercased, as Azure
 * spells one id differently in different places.
 */
export function discoveryQuery(tag: string): string {
  return [
    'Resources',
    "| where type =~ 'microsoft.compute/virtualmachines'",
    `| where isnotnull(tags[${kqlString(tag)}])`,
    '| project id, name, location, zones, tags,',
    '    powerState = tostring(properties.extended.instanceView.powerState.code),',
    '    nicRefs = properties.networkProfile.networkInterfaces',
    '| mv-expand nicRef = nicRefs',
    '| extend nicKey = tolower(tostring(nicRef.id)), nicRefPrimary = nicRef.properties.primary',
    '| project-away nicRefs, nicRef',
    '| join kind=leftouter (',
    '    Resources',
    "    | where type =~ 'microsoft.network/networkinterfaces'",
    '    | where isnotempty(tostring(properties.virtualMachine.id))',
    '    | mv-expand ipConfig = properties.ipConfigurations',
    '    | project nicKey = tolower(id), nicId = id, nicPrimary = properties.primary,',
    '        ipName = tostring(ipConfig.name), ipPrimary = ipConfig.properties.primary,',
    '        privateIp = tostring(ipConfig.properties.privateIPAddress),',
    '        privatePrefixLength = ipConfig.properties.privateIPAddressPrefixLength,',
    '        subnetId = tostring(ipConfig.properties.subnet.id),',
    '        publicIpKey = tolower(tostring(ipConfig.properties.publicIPAddress.id))',
    '    | join kind=leftouter (',
    '        Resources',
    "        | where type =~ 'microsoft.network/publicipaddresses'",
    '        | project publicIpKey = tolower(id), publicIp = tostring(properties.ipAddress)',
    '      ) on publicIpKey',
    '    | project-away publicIpKey, publicIpKey1',
    '  ) on nicKey',
    '| project-away nicKey1',
    '| order by id asc',
  ].join('\n');
}

/**
 * Groups rows into VMs: interfaces in the order first seen, IP configurations per interface. A row
 * that is not an object with a string `id` is a problem, not a VM; `firstIndex` is the place of the
 * first row in the whole answer, for the problem's wording.
 */
export function vmsFromRows(rows: ReadonlyArray<{ row: unknown; observedAt: string }>, firstIndex = 0): { vms: GraphVm[]; problems: Problem[] } {
  const byId = new Map<string, GraphVm & { slots: Map<string, AzureNicSlot> }>();
  const problems: Problem[] = [];
  rows.forEach(({ row, observedAt }, at) => {
    const index = firstIndex + at;
    if (!isObject(row) || typeof row.id !== 'string' || row.id.trim() === '') {
      problems.push({ code: 'VMS_ERR_PROVIDER_ANSWER', message: `Resource Graph row ${index} has no resource id`, at: `row ${index}` });
      return;
    }
    const r = row as Partial<GraphRow>;
    const key = normalizeResourceId(row.id);
    let entry = byId.get(key);
    if (!entry) {
      const vm: AzureVm = {
        id: row.id,
        name: text(r.name) ?? '',
        location: text(r.location) ?? '',
        zones: Array.isArray(r.zones) ? r.zones.filter((z): z is string => typeof z === 'string') : [],
        tags: isObject(r.tags) ? stringMap(r.tags) : {},
        powerState: text(r.powerState),
        nics: [],
      };
      entry = { vm, observedAt, slots: new Map() };
      byId.set(key, entry);
    }
    const nicKey = text(r.nicKey);
    if (nicKey === undefined) return;
    let slot = entry.slots.get(nicKey);
    if (!slot) {
      slot = { id: nicKey, primary: flag(r.nicRefPrimary), nic: text(r.nicId) === undefined ? undefined : { primary: flag(r.nicPrimary), ipConfigurations: [] } };
      entry.slots.set(nicKey, slot);
      entry.vm.nics.push(slot);
    }
    if (slot.nic && text(r.nicId) !== undefined) {
      const configuration: AzureIpConfiguration = {
        name: text(r.ipName) ?? '',
        primary: flag(r.ipPrimary),
        privateIPAddress: text(r.privateIp),
        privateIPAddressPrefixLength: typeof r.privatePrefixLength === 'number' ? r.privatePrefixLength : undefined,
        subnetId: text(r.subnetId),
        publicIPAddress: text(r.publicIp),
      };
      slot.nic.ipConfigurations.push(configuration);
    }
  });
  return { vms: [...byId.values()].map(({ vm, observedAt }) => ({ vm, observedAt })), problems };
}

/** The VM key of a row (its lowercased id), or undefined for a row without one. */
export function rowVmKey(row: unknown): string | undefined {
  return isObject(row) && typeof row.id === 'string' && row.id.trim() !== '' ? normalizeResourceId(row.id) : undefined;
}

function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// Resource Graph answers a column that has no value for a row as null or as an empty string.
function text(value: unknown): string | undefined {
  return typeof value === 'string' && value.trim() !== '' ? value : undefined;
}

// Resource Graph passes dynamic values through as JSON: true, "true" and "True" all occur.
function flag(value: unknown): boolean | undefined {
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string' && /^(true|false)$/i.test(value.trim())) return value.trim().toLowerCase() === 'true';
  return undefined;
}

function stringMap(value: Record<string, unknown>): Record<string, string> {
  return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, typeof v === 'string' ? v : String(v ?? '')]));
}
