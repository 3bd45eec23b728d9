// What the AWS Query protocol (EC2 and STS) looks like on the wire: a form-encoded POST signed with
// SigV4, answered with XML. Shared by the EC2 and STS fakes.
import { randomUUID } from 'node:crypto';
import http from 'node:http';
import type { AddressInfo } from 'node:net';

/** A Query-protocol request as a fake sees it: the form fields and who signed it for which region. */
export interface QueryRequest {
  params: Record<string, string>;
  /** From the SigV4 credential scope of the Authorization header. */
  accessKeyId: string | undefined;
  region: string | undefined;
  service: string | undefined;
  /** X-Amz-Security-Token: present when the caller uses temporary credentials. */
  securityToken: string | undefined;
  headers: http.IncomingHttpHeaders;
}

/** An XML answer: status and body (a large one as the encoded parts it is put together from). */
export interface XmlReply {
  status: number;
  body: string | readonly Buffer[];
}

/** Reads and decodes one form-encoded request. */
export async function readQueryRequest(req: http.IncomingMessage): Promise<QueryRequest> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const body = Buffer.concat(chunks).toString('utf8');
  const params: Record<string, string> = {};
  for (const [key, value] of new URLSearchParams(body)) params[key] = value;
  const auth = parseSigV4(req.headers.authorization);
  const token = req.headers['x-amz-security-token'];
  return {
    params,
    ...auth,
    securityToken: typeof token === 'string' ? token : undefined,
    headers: req.headers,
  };
}

/** The access key, region and service of a SigV4 Authorization header (the signature is not checked). */
export function parseSigV4(header: string | undefined): { accessKeyId: string | undefined; region: string | undefined; service: string | undefined } {
  const match = header ? /Credential=([^/,\s]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(header) : null;
  return { accessKeyId: match?.[1], region: match?.[2], service: match?.[3] };
}

/** `Prefix.1`, `Prefix.2`, … in index order (the Query protocol's lists). */
export function listParam(params: Record<string, string>, prefix: string): string[] {
  return indexedKeys(params, prefix).map((i) => params[`${prefix}.${i}`]!);
}

/** The indices N for which `Prefix.N` or `Prefix.N.*` is present, ascending. */
export function indexedKeys(params: Record<string, string>, prefix: string): number[] {
  const found = new Set<number>();
  const re = new RegExp(`^${prefix.replaceAll('.', '\\.')}\\.(\\d+)(\\.|$)`);
  for (const key of Object.keys(params)) {
    const m = re.exec(key);
    if (m) found.add(Number(m[1]));
  }
  return [...found].sort((a, b) => a - b);
}

/** Escapes text for an XML element or attribute. */
export function xmlEscape(value: string): string {
  return value.replace(/[<>&'"]/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', "'": '&apos;', '"': '&quot;' })[c]!);
}

/** `<name>text</name>`, or nothing when the value is absent. */
export function el(name: string, value: string | number | boolean | undefined | null): string {
  return value === undefined || value === null ? '' : `<${name}>${xmlEscape(String(value))}</${name}>`;
}

/** A new request id in AWS's form. */
export function requestId(): string {
  return randomUUID();
}

/** A node:http server on 127.0.0.1 with a random port; `close` also drops held-open requests. */
export async function listen(handler: (req: http.IncomingMessage, res: http.ServerResponse) => void): Promise<{ url: string; close: () => Promise<void> }> {
  const server = http.createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve, reject) => {
        server.close((err) => (err ? reject(err) : resolve()));
        server.closeAllConnections();
      }),
  };
}

/** Writes an XML reply. */
export function sendXml(res: http.ServerResponse, reply: XmlReply): void {
  const declaration = Buffer.from('<?xml version="1.0" encoding="UTF-8"?>\n');
  const parts = typeof reply.body === 'string' ? [Buffer.from(reply.body)] : reply.body;
  let length = declaration.length;
  for (const part of parts) length += part.length;
  res.writeHead(reply.status, { 'content-type': 'text/xml;charset=UTF-8', 'content-length': length, 'x-amzn-requestid': requestId() });
  res.cork();
  res.write(declaration);
  for (const part of parts) res.write(part);
  res.end();
}
