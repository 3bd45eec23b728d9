// An independent check of an entry against what the API server and Istio's WorkloadEntry CRD
// (v1 schema and x-kubernetes-validations) enforce, plus what vm-mesh-sync promises on top. Tests
// use it to prove mapping never produces an object the writer would have rejected.
import {
  AUTO_REGISTRATION_GROUP_ANNOTATION,
  MANAGED_BY_LABEL,
  MANAGED_BY_VALUE,
  NAME_LABEL,
  OBSERVED_AT_ANNOTATION,
  OWNER_LABEL,
  SCOPE_ANNOTATION,
  SOURCE_ANNOTATION,
  type WorkloadEntry,
} from '../model.ts';
import {
  isDns1123Label,
  isDns1123Subdomain,
  isLabelKey,
  isLabelValue,
  isPortName,
  isUsableAddress,
  MAX_LABELS,
  MAX_LOCALITY,
  MAX_NETWORK,
  MAX_PORTS,
  MAX_WEIGHT,
} from './syntax.ts';
import { nameLabelValue } from './entry-name.ts';

/** Annotations Istio's own auto-registration writes; an entry carrying them would be managed twice. */
export const ISTIO_AUTO_REGISTRATION_ANNOTATIONS: readonly string[] = [
  AUTO_REGISTRATION_GROUP_ANNOTATION,
  'istio.io/workloadController',
  'istio.io/connectedAt',
  'istio.io/disconnectedAt',
];

const SPEC_FIELDS = new Set(['address', 'ports', 'labels', 'serviceAccount', 'network', 'locality', 'weight']);

/**
 * Every way `entry` falls short of a WorkloadEntry vm-mesh-sync may write, one message per problem
 * (empty when valid): CRD limits and patterns, Kubernetes name and label syntax, an IP address
 * present, our ownership labels and annotations, no empty optional fields, no Istio
 * auto-registration annotations.
 */
export function checkEntry(entry: WorkloadEntry): string[] {
  const problems: string[] = [];
  const add = (path: string, message: string): void => {
    problems.push(`${path}: ${message}`);
  };

  if (entry.apiVersion !== 'networking.istio.io/v1') {
    add('apiVersion', `must be networking.istio.io/v1, not ${String(entry.apiVersion)}`);
  }
  if (entry.kind !== 'WorkloadEntry') add('kind', `must be WorkloadEntry, not ${String(entry.kind)}`);

  const { metadata, spec } = entry;
  if (!isString(metadata.name) || !isDns1123Subdomain(metadata.name)) {
    add('metadata.name', 'must be a DNS-1123 subdomain of at most 253 characters');
  }
  if (!isString(metadata.namespace) || !isDns1123Label(metadata.namespace)) {
    add('metadata.namespace', 'must be a DNS-1123 label of at most 63 characters');
  }
  checkLabels('metadata.labels', metadata.labels, add);
  if (metadata.labels[MANAGED_BY_LABEL] !== MANAGED_BY_VALUE) {
    add(`metadata.labels.${MANAGED_BY_LABEL}`, `must be ${MANAGED_BY_VALUE}`);
  }
  if (!metadata.labels[OWNER_LABEL]) add(`metadata.labels.${OWNER_LABEL}`, 'must name the owner');
  if (isString(metadata.name) && metadata.labels[NAME_LABEL] !== nameLabelValue(metadata.name)) {
    add(`metadata.labels.${NAME_LABEL}`, `must be ${nameLabelValue(metadata.name)}, found by the entry's name`);
  }
  for (const key of Object.keys(metadata.labels)) {
    if (key !== MANAGED_BY_LABEL && key !== OWNER_LABEL && key !== NAME_LABEL) {
      add(`metadata.labels.${key}`, 'must not be set; workload labels belong in spec.labels');
    }
  }
  for (const key of Object.keys(metadata.annotations)) {
    if (!isLabelKey(key)) add(`metadata.annotations.${key}`, 'is not a valid annotation key');
    if (ISTIO_AUTO_REGISTRATION_ANNOTATIONS.includes(key)) {
      add(`metadata.annotations.${key}`, "is Istio auto-registration's and must not be set");
    }
  }
  for (const key of [SOURCE_ANNOTATION, SCOPE_ANNOTATION, OBSERVED_AT_ANNOTATION]) {
    if (!metadata.annotations[key]) add(`metadata.annotations.${key}`, 'must be set');
  }

  for (const key of Object.keys(spec)) {
    if (!SPEC_FIELDS.has(key)) add(`spec.${key}`, 'is not a WorkloadEntry field vm-mesh-sync writes');
  }
  if (!isString(spec.address) || spec.address.length > 256 || !isUsableAddress(spec.address)) {
    add('spec.address', 'must be an IPv4 or IPv6 address (no prefix, no zone, not unspecified)');
  }
  if (spec.ports !== undefined) {
    const names = Object.keys(spec.ports);
    if (names.length === 0) add('spec.ports', 'must be omitted rather than empty');
    if (names.length > MAX_PORTS) add('spec.ports', `has ${names.length} ports; at most ${MAX_PORTS}`);
    for (const [name, port] of Object.entries(spec.ports)) {
      if (!isPortName(name)) add(`spec.ports.${name}`, 'port name must be valid (letters, digits, inner dashes, shorter than 63)');
      if (!Number.isInteger(port) || port < 1 || port > 65535) add(`spec.ports.${name}`, 'port must be between 1-65535');
    }
  }
  if (spec.labels !== undefined) {
    if (Object.keys(spec.labels).length === 0) add('spec.labels', 'must be omitted rather than empty');
    if (Object.keys(spec.labels).length > MAX_LABELS) add('spec.labels', `has more than ${MAX_LABELS} labels`);
    checkLabels('spec.labels', spec.labels, add);
  }
  if (spec.serviceAccount !== undefined && (!isString(spec.serviceAccount) || !isDns1123Subdomain(spec.serviceAccount))) {
    add('spec.serviceAccount', 'must be a DNS-1123 subdomain of at most 253 characters');
  }
  if (spec.network !== undefined) {
    if (!isString(spec.network) || spec.network === '' || spec.network.length > MAX_NETWORK || !isLabelValue(spec.network)) {
      add('spec.network', 'must be a non-empty label value (the topology.istio.io/network label it is matched against)');
    }
  }
  if (spec.locality !== undefined) {
    const parts = isString(spec.locality) ? spec.locality.split('/') : [];
    if (!isString(spec.locality) || spec.locality.length > MAX_LOCALITY || parts.length > 3 || parts.some((p) => p === '')) {
      add('spec.locality', `must be region[/zone[/subzone]] with no empty part, at most ${MAX_LOCALITY} characters`);
    }
  }
  if (spec.weight !== undefined && (!Number.isInteger(spec.weight) || spec.weight < 1 || spec.weight > MAX_WEIGHT)) {
    add('spec.weight', `must be a whole number from 1 to ${MAX_WEIGHT}`);
  }
  return problems;
}

function checkLabels(path: string, labels: Record<string, string>, add: (path: string, message: string) => void): void {
  for (const [key, value] of Object.entries(labels)) {
    if (!isLabelKey(key)) add(`${path}.${key}`, 'is not a valid label key');
    if (!isString(value) || !isLabelValue(value)) add(`${path}.${key}`, 'value is not a valid label value');
  }
}

function isString(value: unknown): value is string {
  return typeof value === 'string';
}
