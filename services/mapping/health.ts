// The health tag grammar: a probe the Istio agent on the VM runs, written so that it fits in every
// cloud's tag values. GCP label values allow only lowercase letters, digits, `-` and `_` (at most
// 63), so `http-8080-api_v1_health` means the same as `http:8080/api/v1/health`.
//
// A probe is only ever one of what the agent on a VM runs (pkg/istio-agent/health): an HTTP GET or
// a TCP connect. Not from a tag: `exec` (a command one VM's tag would have every VM of its
// WorkloadGroup run) and `grpc` (the WorkloadGroup API has it, the VM's agent does not probe it).
import { fail, ok, quote, type Step } from './step.ts';

/** WorkloadGroup `spec.probe` as vm-mesh-sync writes it (networking.istio.io/v1 ReadinessProbe). */
export type ReadinessProbe =
  | { httpGet: { path: string; port: number; scheme: 'HTTP' | 'HTTPS' } }
  | { tcpSocket: { port: number } };

/** A parsed health tag: the probe, and the tag written the one canonical way (`http:8080/healthz`). */
export interface HealthCheck {
  probe: ReadinessProbe;
  /** Parses back to the same probe; what the entry's HEALTH_CHECK_ANNOTATION carries. */
  text: string;
}

const KINDS = ['http', 'https', 'tcp'] as const;
const DIGITS = /^[0-9]+$/;
/** RFC 3986 path and query characters: no spaces, quotes, `#` or `\`. */
const PATH = /^\/[A-Za-z0-9\-._~!$&'()*+,;=:@%/?]*$/;
/** What the dash form's path may hold: GCP label value characters, `_` standing for `/`. */
const DASH_PATH = /^[a-z0-9_-]+$/;
const SYNTAX = "use http:PORT/PATH, https:PORT/PATH or tcp:PORT (or http-PORT-PATH with '_' for '/', for GCP labels), e.g. http:8080/healthz";

/**
 * Parses a health tag value (trimmed; the kind in any case). Grammar, in two forms whose first
 * separator after the kind tells them apart:
 * - colon form: `http:PORT[/PATH]`, `https:PORT[/PATH]`, `tcp:PORT`;
 * - dash form, for GCP labels: `http-PORT[-PATH]`, `https-PORT[-PATH]`, `tcp-PORT`, where each `_`
 *   of PATH stands for `/` and `-` is itself (`http-8080-health-check` → `/health-check`).
 * PORT is decimal 1–65535; PATH defaults to `/`. A blank value means no health check (undefined).
 * `where` names the source in reasons (`tag mesh-health`).
 */
export function parseHealthCheck(value: string, where: string): Step<HealthCheck | undefined> {
  const text = value.trim();
  if (text === '') return ok(undefined);
  const bad = (why: string): Step<never> => fail('VMS_SKIP_BAD_HEALTH', `${where}: ${quote(value)} ${why} (${SYNTAX})`);
  const match = /^([A-Za-z]+)([:-])(.*)$/su.exec(text);
  if (!match) {
    if (/^(true|yes|on|enabled?)$/iu.test(text)) return bad('names no probe; the Istio agent on the VM needs one to report health');
    return bad('is not a probe');
  }
  const kind = match[1]!.toLowerCase();
  const dash = match[2] === '-';
  const rest = match[3]!;
  if (kind === 'exec' || kind === 'grpc') {
    return bad(
      kind === 'exec'
        ? 'asks for an exec probe, which a tag may not set (every VM of the WorkloadGroup would run it); write it in the WorkloadGroup'
        : "asks for a grpc probe, which the Istio agent on a VM does not run; use tcp:PORT or an HTTP health endpoint",
    );
  }
  if (!(KINDS as readonly string[]).includes(kind)) return bad(`has the unknown probe kind ${quote(match[1]!)}`);

  const cut = dash ? rest.indexOf('-') : rest.indexOf('/');
  const portText = cut === -1 ? rest : rest.slice(0, cut);
  const port = DIGITS.test(portText) ? Number(portText) : Number.NaN;
  if (!(port >= 1 && port <= 65535)) return bad(portText === '' ? 'has no port' : `has ${quote(portText)} where a port from 1 to 65535 belongs`);
  const pathText = cut === -1 ? '' : rest.slice(cut);

  if (kind === 'tcp') {
    if (pathText !== '') return bad('gives a path to a tcp probe, which only connects');
    return ok({ probe: { tcpSocket: { port } }, text: `tcp:${port}` });
  }
  let path = '/';
  if (dash && pathText !== '') {
    const raw = pathText.slice(1);
    if (!DASH_PATH.test(raw)) return bad(`has the path ${quote(raw)}; in the dash form a path is lowercase letters, digits, '-' and '_' (for '/')`);
    path = `/${raw.replaceAll('_', '/')}`;
  } else if (pathText !== '') {
    if (!PATH.test(pathText)) return bad(`has the path ${quote(pathText)}, which is not a URL path (no spaces, quotes, '#' or '\\')`);
    path = pathText;
  }
  const scheme = kind === 'https' ? 'HTTPS' : 'HTTP';
  return ok({ probe: { httpGet: { path, port, scheme } }, text: `${kind}:${port}${path}` });
}
