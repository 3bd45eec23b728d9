// Compute Engine's view of an instance → the provider-neutral Instance. Pure: the caller says which
// project it asked and when the answer arrived; nothing here calls Google.
import type { protos } from '@google-cloud/compute';
import type { Instance, InstanceState, Problem } from '../../services/model.ts';

/** An instance as the Compute API (v1) describes it. */
export type GceInstance = protos.google.cloud.compute.v1.IInstance;

/** Where and when a Compute answer was received, and how network tags are read. */
export interface GceContext {
  /** The project the listing or lookup asked. */
  project: string;
  /** When the page carrying the instance arrived (RFC 3339). */
  observedAt: string;
  /** Offer each network tag as a tag `<tag>=true` (config `networkTagsAsTags`). */
  networkTagsAsTags: boolean;
  /** The zone the answer filed the instance under (`zones/<zone>` of an aggregated list), used when the instance omits its own. */
  zone?: string;
}

/** The result of mapping one Compute instance: the Instance, or the problem that prevents it. */
export type GceMapResult = { ok: true; instance: Instance } | { ok: false; problem: Problem };

/** The value a network tag gets when offered as a tag: the selector's default value, so `mesh` alone onboards. */
export const NETWORK_TAG_VALUE = 'true';

/** Compute's instance ids: unsigned 64-bit numbers, written in decimal. */
export const NUMERIC_ID = /^\d{1,20}$/;

/** Compute resource names (RFC 1035 labels): what an instance name can be. Never all digits, so never mistaken for an id. */
export const RESOURCE_NAME = /^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Compute zone names: `<region>-<zone>`, the region being `<geography>-<area><number>`, e.g. `us-central1-a`. */
export const ZONE_NAME = /^[a-z]+-[a-z]+\d+-[a-z0-9]+$/;

// REPAIRING: Google says the instance is unusable while it is repaired and returns to a previous
// state afterwards; as `pending` it leaves the mesh until it runs again, like a VM that boots.
// TERMINATED is Compute's word for a stopped VM (it can be started again), not a deleted one: a
// deleted instance is simply absent. DEPROVISIONING and PENDING_STOP are the way to stopped.
const STATES: Readonly<Record<string, InstanceState>> = {
  PROVISIONING: 'pending',
  STAGING: 'pending',
  PENDING: 'pending',
  REPAIRING: 'pending',
  RUNNING: 'running',
  PENDING_STOP: 'stopping',
  STOPPING: 'stopping',
  SUSPENDING: 'stopping',
  DEPROVISIONING: 'stopping',
  STOPPED: 'stopped',
  SUSPENDED: 'stopped',
  TERMINATED: 'stopped',
};

/** Compute's instance status normalized; undefined for a status this version does not know. */
export function normalizeGceStatus(status: string | null | undefined): InstanceState | undefined {
  return typeof status === 'string' && Object.hasOwn(STATES, status) ? STATES[status] : undefined;
}

/** The region of a zone: `us-central1-a` → `us-central1`; undefined for something that is not a zone name. */
export function regionOfZone(zone: string): string | undefined {
  return ZONE_NAME.test(zone) ? zone.slice(0, zone.lastIndexOf('-')) : undefined;
}

/** The last path segment of a Compute URL (`…/zones/us-central1-a` → `us-central1-a`); a bare name stays as it is. */
export function lastSegment(url: string | null | undefined): string {
  if (typeof url !== 'string') return '';
  const trimmed = url.trim().replace(/\/+$/, '');
  return trimmed.slice(trimmed.lastIndexOf('/') + 1);
}

/**
 * A network's id: `projects/<project>/global/networks/<name>`, its URL without the API prefix.
 * VPC names repeat across projects (every project may have `default`) and a Shared VPC network
 * lives in its host project, so only the path is unique; `mapping.network.byNetworkId` keys use it.
 */
export function networkIdOf(url: string | null | undefined): string | undefined {
  return resourcePath(url, /projects\/[^/]+\/global\/networks\/[^/]+$/);
}

/** A subnetwork's id: `projects/<project>/regions/<region>/subnetworks/<name>`, for the same reason as networks. */
export function subnetIdOf(url: string | null | undefined): string | undefined {
  return resourcePath(url, /projects\/[^/]+\/regions\/[^/]+\/subnetworks\/[^/]+$/);
}

function resourcePath(url: string | null | undefined, path: RegExp): string | undefined {
  if (typeof url !== 'string' || url.trim() === '') return undefined;
  const trimmed = url.trim().replace(/\/+$/, '');
  // Something in another form is kept whole: an id that is odd still tells networks apart.
  return path.exec(trimmed)?.[0] ?? trimmed;
}

/**
 * The project an instance's selfLink names (`…/projects/<project>/zones/<zone>/instances/<name>`),
 * whatever the host and API version; undefined when there is no selfLink or it is in another form.
 */
export function selfLinkProject(selfLink: string | null | undefined): string | undefined {
  if (typeof selfLink !== 'string') return undefined;
  const project = /\/projects\/([^/]+)\/zones\/[^/]+\/instances\/[^/]+\/?$/.exec(selfLink.trim())?.[1];
  if (project === undefined) return undefined;
  try {
    return decodeURIComponent(project);
  } catch {
    return project;
  }
}

/**
 * The project of an instance Compute answered for `project`, when its selfLink names another one:
 * an endpoint (a proxy, a Private Service Connect address) that serves another project than the one
 * asked would otherwise put that project's instances into the mesh as this one's. An instance
 * without a selfLink, or whose selfLink names a project by number (Compute writes ids, and the
 * config takes ids only, so a number cannot be compared), decides nothing.
 */
export function foreignProject(gce: GceInstance, project: string): string | undefined {
  const named = selfLinkProject(gce.selfLink);
  if (named === undefined || /^\d+$/.test(named)) return undefined;
  return named.toLowerCase() === project.toLowerCase() ? undefined : named;
}

/**
 * Maps one Compute instance. Labels are the tags; with `networkTagsAsTags`, every network tag
 * without a label of the same key is added as `<tag>=true`. An instance without any address still
 * maps (mapping decides); one without a numeric id, a zone or a known status does not.
 */
export function toInstance(gce: GceInstance, ctx: GceContext): GceMapResult {
  const rawId = gce.id === null || gce.id === undefined ? '' : String(gce.id).trim();
  const name = typeof gce.name === 'string' ? gce.name.trim() : '';
  const zone = lastSegment(gce.zone) || (ctx.zone ?? '');
  const where = zone || `project ${ctx.project}`;
  const what = name ? `instance ${name}` : 'an instance';
  if (!NUMERIC_ID.test(rawId)) {
    const message = rawId ? `${what} in ${where} (project ${ctx.project}) has an id that is not a number: '${clip(rawId)}'` : `${what} in ${where} (project ${ctx.project}) has no id`;
    return { ok: false, problem: { code: 'VMS_ERR_PROVIDER_ANSWER', message, at: name || where } };
  }
  const region = regionOfZone(zone);
  if (region === undefined) {
    return { ok: false, problem: { code: 'VMS_ERR_PROVIDER_ANSWER', message: `instance ${rawId} in project ${ctx.project} has no zone one can read ('${clip(zone)}')`, at: rawId } };
  }
  const state = normalizeGceStatus(gce.status as string | null | undefined);
  if (state === undefined) {
    return {
      ok: false,
      problem: { code: 'VMS_ERR_PROVIDER_ANSWER', message: `instance ${rawId} (${name || 'no name'}) in ${zone} has an unknown status '${clip(String(gce.status ?? ''))}'`, at: rawId },
    };
  }

  // fromEntries defines own properties, so a label named `__proto__` stays a label.
  const labels: Record<string, string> = Object.fromEntries(Object.entries(gce.labels ?? {}).map(([k, v]) => [k, typeof v === 'string' ? v : String(v ?? '')]));
  const tags: Record<string, string> = { ...labels };
  if (ctx.networkTagsAsTags) {
    for (const item of gce.tags?.items ?? []) {
      const tag = typeof item === 'string' ? item.trim() : '';
      if (tag !== '' && !Object.hasOwn(labels, tag)) Object.defineProperty(tags, tag, { value: NETWORK_TAG_VALUE, enumerable: true, writable: true, configurable: true });
    }
  }

  const interfaces = gce.networkInterfaces ?? [];
  const instance: Instance = {
    provider: 'gcp',
    account: ctx.project,
    region,
    zone,
    id: rawId,
    name: name || rawId,
    state,
    privateIPv4s: unique(interfaces.map((ni) => ni.networkIP)),
    publicIPv4s: unique(interfaces.flatMap((ni) => (ni.accessConfigs ?? []).map((ac) => ac.natIP))),
    // Internal before external: a mesh inside the VPC reaches the internal address without a route out.
    ipv6s: unique(interfaces.flatMap((ni) => [ni.ipv6Address, ...(ni.ipv6AccessConfigs ?? []).map((ac) => ac.externalIpv6)])),
    tags,
    observedAt: ctx.observedAt,
  };
  // nic0 is the primary interface: the one the guest's default route and hostname use.
  const networkId = networkIdOf(interfaces[0]?.network);
  const subnetId = subnetIdOf(interfaces[0]?.subnetwork);
  if (networkId !== undefined) instance.networkId = networkId;
  if (subnetId !== undefined) instance.subnetId = subnetId;
  return { ok: true, instance };
}

function unique(values: ReadonlyArray<string | null | undefined>): string[] {
  const seen = new Set<string>();
  for (const value of values) {
    const v = typeof value === 'string' ? value.trim() : '';
    if (v) seen.add(v);
  }
  return [...seen];
}

function clip(value: string): string {
  const shown = value.length > 80 ? `${value.slice(0, 77)}...` : value;
  return shown.replace(/[\u0000-\u001f\u007f]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`);
}
