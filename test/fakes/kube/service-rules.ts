// The API server's checks of a core/v1 Service (k8s.io/kubernetes pkg/apis/core/validation
// ValidateService, the parts a selector Service touches) and the defaults it fills in, written
// from Kubernetes' rules and independent of how vm-mesh-sync builds its Services.
import { formatValue, type FieldError } from './status.ts';
import { dns1123LabelErrors, isRecord, qualifiedNameErrors, validateLabels } from './metadata.ts';

const DNS1035_LABEL = /^[a-z]([-a-z0-9]*[a-z0-9])?$/;
const IANA_SVC_NAME = /^[-a-z0-9]+$/;
const PROTOCOLS = ['TCP', 'UDP', 'SCTP'];
const TYPES = ['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName'];

function invalid(field: string, value: unknown, msg: string): FieldError {
  return { reason: 'FieldValueInvalid', field, body: `Invalid value: ${formatValue(value)}: ${msg}` };
}

function required(field: string): FieldError {
  return { reason: 'FieldValueRequired', field, body: 'Required value' };
}

/** Messages for a Service name that is not a DNS-1035 label. */
export function dns1035LabelErrors(value: string): string[] {
  const errs: string[] = [];
  if (value.length > 63) errs.push('must be no more than 63 characters');
  if (!DNS1035_LABEL.test(value)) {
    errs.push(
      "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')",
    );
  }
  return errs;
}

/** A targetPort: a number 1-65535, or a named port (IANA_SVC_NAME: at most 15, a letter, no `--`). */
function targetPortErrors(value: unknown): string[] {
  if (typeof value === 'number') return Number.isInteger(value) && value >= 1 && value <= 65535 ? [] : ['must be between 1 and 65535, inclusive'];
  if (typeof value !== 'string') return ['must be an int or a string'];
  const errs: string[] = [];
  if (value.length > 15) errs.push('must be no more than 15 characters');
  if (!IANA_SVC_NAME.test(value)) errs.push("must contain only alpha-numeric characters (a-z, 0-9), and hyphens (-)");
  if (value.includes('--')) errs.push("must not contain consecutive hyphens");
  if (!/[a-z]/.test(value)) errs.push('must contain at least one letter (a-z)');
  if (value.startsWith('-') || value.endsWith('-')) errs.push('must not begin or end with a hyphen');
  return errs;
}

/** Field errors of a Service (after defaulting), as the API server reports them; empty when valid. */
export function validateService(obj: Record<string, unknown>): FieldError[] {
  const out: FieldError[] = [];
  const metadata = isRecord(obj.metadata) ? obj.metadata : {};
  const name = typeof metadata.name === 'string' ? metadata.name : '';
  for (const m of dns1035LabelErrors(name)) out.push(invalid('metadata.name', name, m));
  const spec = isRecord(obj.spec) ? obj.spec : {};
  const type = spec.type ?? 'ClusterIP';
  if (!TYPES.includes(String(type))) out.push({ reason: 'FieldValueNotSupported', field: 'spec.type', body: `Unsupported value: ${formatValue(type)}` });
  const ports = Array.isArray(spec.ports) ? spec.ports : [];
  const headless = spec.clusterIP === 'None';
  if (ports.length === 0 && type !== 'ExternalName' && !headless) out.push(required('spec.ports'));
  const names = new Set<string>();
  const numbers = new Set<string>();
  ports.forEach((raw, i) => {
    const at = `spec.ports[${i}]`;
    const port = isRecord(raw) ? raw : {};
    const portName = typeof port.name === 'string' ? port.name : '';
    if (ports.length > 1 && portName === '') out.push(required(`${at}.name`));
    if (portName !== '') {
      for (const m of dns1123LabelErrors(portName)) out.push(invalid(`${at}.name`, portName, m));
      if (names.has(portName)) out.push({ reason: 'FieldValueDuplicate', field: `${at}.name`, body: `Duplicate value: ${formatValue(portName)}` });
      names.add(portName);
    }
    const number = port.port;
    if (typeof number !== 'number' || !Number.isInteger(number) || number < 1 || number > 65535) {
      out.push(invalid(`${at}.port`, number, 'must be between 1 and 65535, inclusive'));
    }
    const protocol = port.protocol ?? 'TCP';
    if (!PROTOCOLS.includes(String(protocol))) {
      out.push({ reason: 'FieldValueNotSupported', field: `${at}.protocol`, body: `Unsupported value: ${formatValue(protocol)}: supported values: "SCTP", "TCP", "UDP"` });
    }
    const id = `${String(number)}/${String(protocol)}`;
    if (numbers.has(id)) out.push({ reason: 'FieldValueDuplicate', field: at, body: `Duplicate value: ${formatValue({ port: number, protocol })}` });
    numbers.add(id);
    if (port.targetPort !== undefined) for (const m of targetPortErrors(port.targetPort)) out.push(invalid(`${at}.targetPort`, port.targetPort, m));
    if (port.appProtocol !== undefined) {
      for (const m of qualifiedNameErrors(String(port.appProtocol))) out.push(invalid(`${at}.appProtocol`, port.appProtocol, m));
    }
  });
  if (spec.selector !== undefined) {
    if (!isRecord(spec.selector)) out.push(invalid('spec.selector', spec.selector, 'must be a map of labels'));
    else out.push(...validateLabels(spec.selector, 'spec.selector'));
  }
  return out;
}

/** The defaults the API server fills into a new Service (a cluster IP from `nextIp`, protocols, target ports). */
export function defaultService(obj: Record<string, unknown>, nextIp: () => string): void {
  const spec = isRecord(obj.spec) ? obj.spec : {};
  obj.spec = spec;
  spec.type ??= 'ClusterIP';
  spec.sessionAffinity ??= 'None';
  spec.internalTrafficPolicy ??= 'Cluster';
  if (spec.type !== 'ExternalName' && spec.clusterIP === undefined) {
    const ip = nextIp();
    spec.clusterIP = ip;
    spec.clusterIPs = [ip];
    spec.ipFamilies = ['IPv4'];
    spec.ipFamilyPolicy = 'SingleStack';
  }
  for (const port of Array.isArray(spec.ports) ? spec.ports : []) {
    if (!isRecord(port)) continue;
    port.protocol ??= 'TCP';
    port.targetPort ??= port.port;
  }
}

const SE_PROTOCOLS = ['HTTP', 'HTTPS', 'GRPC', 'GRPC-WEB', 'HTTP2', 'MONGO', 'TCP', 'TLS', 'MYSQL', 'REDIS', 'UDP'];
const FQDN = /^(\*\.)?[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)+$/;

/**
 * Problems of an Istio ServiceEntry by the rules of its reference documentation and of istiod's
 * validation of `networking.istio.io/v1` ServiceEntry (no ServiceEntry CRD is vendored here): at
 * least one FQDN host, location and resolution from their enums, endpoints and workloadSelector
 * not both, at least one port, ports with unique DNS-1123 label names and unique numbers 1-65535,
 * a protocol from Istio's list, a valid target port, selector labels valid.
 */
export function serviceEntryProblems(obj: Record<string, unknown>): string[] {
  const out: string[] = [];
  const spec = isRecord(obj.spec) ? obj.spec : {};
  const hosts = Array.isArray(spec.hosts) ? spec.hosts : [];
  if (hosts.length === 0) out.push('spec.hosts: at least one host is required');
  for (const h of hosts) if (typeof h !== 'string' || h.length > 253 || !FQDN.test(h)) out.push(`spec.hosts: ${formatValue(h)} is not a fully qualified domain name`);
  if (!['MESH_EXTERNAL', 'MESH_INTERNAL', undefined].includes(spec.location as string | undefined)) out.push(`spec.location: ${formatValue(spec.location)} is not supported`);
  if (!['NONE', 'STATIC', 'DNS', 'DNS_ROUND_ROBIN', undefined].includes(spec.resolution as string | undefined)) out.push(`spec.resolution: ${formatValue(spec.resolution)} is not supported`);
  if (spec.endpoints !== undefined && spec.workloadSelector !== undefined) out.push('spec: only one of endpoints and workloadSelector may be set');
  if (spec.workloadSelector !== undefined) {
    const labels = isRecord(spec.workloadSelector) && isRecord(spec.workloadSelector.labels) ? spec.workloadSelector.labels : undefined;
    if (!labels || Object.keys(labels).length === 0) out.push('spec.workloadSelector.labels: required');
    else for (const e of validateLabels(labels, 'spec.workloadSelector.labels')) out.push(`${e.field}: ${e.body}`);
  }
  const ports = Array.isArray(spec.ports) ? spec.ports : [];
  if (ports.length === 0) out.push('spec.ports: at least one port is required');
  const names = new Set<string>();
  const numbers = new Set<number>();
  ports.forEach((raw, i) => {
    const port = isRecord(raw) ? raw : {};
    const at = `spec.ports[${i}]`;
    const name = typeof port.name === 'string' ? port.name : '';
    if (name === '' || dns1123LabelErrors(name).length > 0) out.push(`${at}.name: ${formatValue(port.name)} is not a DNS-1123 label`);
    if (names.has(name)) out.push(`${at}.name: ${formatValue(name)} is used twice`);
    names.add(name);
    const n = port.number;
    if (typeof n !== 'number' || !Number.isInteger(n) || n < 1 || n > 65535) out.push(`${at}.number: must be between 1 and 65535`);
    else if (numbers.has(n)) out.push(`${at}.number: ${n} is used twice`);
    else numbers.add(n);
    if (port.protocol !== undefined && !SE_PROTOCOLS.includes(String(port.protocol))) out.push(`${at}.protocol: ${formatValue(port.protocol)} is not one of ${SE_PROTOCOLS.join('|')}`);
    if (port.targetPort !== undefined && targetPortErrors(port.targetPort).length > 0) out.push(`${at}.targetPort: must be between 1 and 65535`);
  });
  return out;
}
