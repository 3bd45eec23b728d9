// The DescribeInstances answer read as it streams: for every answer, what toInstance makes of it is
// what it makes of the SDK's own deserialization. Both are real EC2Clients over HTTP to a server
// on 127.0.0.1 that answers each request with the next queued body.
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { DescribeInstancesCommand, type DescribeInstancesCommandOutput, EC2Client, type Reservation } from '@aws-sdk/client-ec2';
import fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eachReservation, InstancesAnswerError, readInstancesAnswer, readInstancesAnswers, reservationsOf } from './describe-answer.ts';
import { toInstance } from './instance.ts';
import { BASE_CREDENTIALS } from './test-support.ts';

interface Queued {
  status: number;
  body: string;
  headers?: Record<string, string>;
  /** The connection drops half-way through the body. */
  cut?: boolean;
}

const queue: Queued[] = [];
let server: http.Server;
let sdk: EC2Client;
let ours: EC2Client;

beforeAll(async () => {
  server = http.createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const next = queue.shift() ?? { status: 500, body: '<Response><Errors><Error><Code>Unqueued</Code><Message>no answer queued</Message></Error></Errors></Response>' };
      res.writeHead(next.status, { 'content-type': 'text/xml;charset=UTF-8', ...next.headers });
      // In pieces, so that the reader gets the body as several chunks.
      const bytes = Buffer.from(next.body);
      if (next.cut) {
        res.flushHeaders();
        res.write(bytes.subarray(0, bytes.length >> 1), () => res.socket?.destroy());
        return;
      }
      const step = Math.max(1, Math.ceil(bytes.length / 3));
      for (let at = 0; at < bytes.length; at += step) res.write(bytes.subarray(at, at + step));
      res.end();
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const endpoint = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  const settings = { region: 'us-east-1', endpoint, credentials: BASE_CREDENTIALS, maxAttempts: 2, retryMode: 'standard' as const };
  sdk = new EC2Client(settings);
  ours = new EC2Client(settings);
  readInstancesAnswers(ours);
});

afterAll(async () => {
  sdk.destroy();
  ours.destroy();
  await new Promise((resolve) => server.close(resolve));
});

const CONTEXT = { account: '123456789012', region: 'us-east-1', observedAt: '2026-01-01T00:00:00.000Z' };

/** What the provider reads of a page: owners, mapped instances (or their problems), next token. */
async function view(out: DescribeInstancesCommandOutput) {
  return {
    nextToken: out.NextToken,
    requestId: out.$metadata.requestId,
    reservations: (await reservationsOf(out)).map((r) => ({ owner: r.OwnerId, instances: (r.Instances ?? []).map((i) => toInstance(i, CONTEXT)) })),
  };
}

type Settled = { ok: true; view: Awaited<ReturnType<typeof view>> } | { ok: false; name: string; message: string };

async function send(client: EC2Client, answers: Queued[]): Promise<Settled> {
  queue.length = 0;
  queue.push(...answers);
  try {
    return { ok: true, view: await view(await client.send(new DescribeInstancesCommand({}))) };
  } catch (err) {
    return { ok: false, name: (err as Error).name, message: (err as Error).message };
  } finally {
    queue.length = 0;
  }
}

/** The same answers, to the SDK's reading and to ours. */
async function both(...answers: Queued[]): Promise<{ sdk: Settled; ours: Settled }> {
  return { sdk: await send(sdk, answers), ours: await send(ours, answers) };
}

// ---- Answers as EC2 could write them, in every way XML lets them be written ----

// Characters of tag values and names: XML's specials, whitespace and line breaks, non-ASCII.
const CHARS = ['a', 'Z', '0', '-', '.', ':', '/', '@', '+', '=', '_', ' ', '\t', '\n', '\r', '&', '<', '>', '"', "'", 'é', '€', '中', '😀', '\u00a0'];
const text = fc.array(fc.constantFrom(...CHARS), { maxLength: 10 }).map((cs) => cs.join(''));

/** Writes text as XML may: named or numeric references, raw where allowed, CDATA sections. */
function encode(value: string, choices: number[]): string {
  let at = 0;
  const pick = (n: number) => choices.length === 0 ? 0 : choices[at++ % choices.length]! % n;
  const chars = [...value];
  if (chars.length > 0 && !value.includes(']]>') && pick(4) === 0) return `<![CDATA[${value}]]>`;
  return chars
    .map((c) => {
      const cp = c.codePointAt(0)!;
      const numeric = cp <= 0xffff ? [`&#${cp};`, `&#x${cp.toString(16)};`] : [];
      switch (c) {
        case '&':
          return ['&amp;', ...numeric][pick(3)];
        case '<':
          return ['&lt;', ...numeric][pick(3)];
        case '>':
        case '"':
        case "'":
          return [c, { '>': '&gt;', '"': '&quot;', "'": '&apos;' }[c], ...numeric][pick(4)];
        default:
          return [c, ...numeric][pick(1 + numeric.length)];
      }
    })
    .join('');
}

interface Style {
  pretty: boolean;
  selfClosing: boolean;
  comments: boolean;
  choices: number[];
}

class Writer {
  readonly style: Style;
  constructor(style: Style) {
    this.style = style;
  }
  el(name: string, value: string | undefined): string {
    if (value === undefined) return '';
    if (value === '' && this.style.selfClosing) return `<${name}/>`;
    return `<${name}>${encode(value, this.style.choices)}</${name}>`;
  }
  group(name: string, parts: string[]): string {
    const sep = this.style.pretty ? '\n  ' : '';
    const note = this.style.comments ? '<!-- note -->' : '';
    const inner = parts.filter((p) => p !== '');
    if (inner.length === 0 && this.style.selfClosing) return `<${name}/>`;
    return `<${name}>${note}${inner.map((p) => sep + p).join('')}${this.style.pretty ? '\n' : ''}</${name}>`;
  }
  items(name: string, items: string[][]): string {
    return this.group(name, items.map((parts) => this.group('item', parts)));
  }
}

const maybe = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: undefined });
const ip = fc.oneof(fc.ipV4(), text);
const intText = fc.oneof(fc.nat(20).map(String), fc.constantFrom('', ' 1', '1 ', 'x', '2.0', '-1'));
const boolText = fc.constantFrom('true', 'false', 'TRUE', 'True', '', 'yes');
const stateName = fc.oneof(fc.constantFrom('pending', 'running', 'stopping', 'stopped', 'shutting-down', 'terminated'), text);

const address = fc.record({ ip: maybe(ip), primary: maybe(boolText), publicIp: maybe(ip) });
const networkInterface = fc.record({
  ip: maybe(ip),
  deviceIndex: maybe(intText),
  cardIndex: maybe(intText),
  publicIp: maybe(ip),
  addresses: fc.array(address, { maxLength: 3 }),
  ipv6s: fc.array(maybe(text), { maxLength: 2 }),
});
const instance = fc.record({
  id: maybe(fc.oneof(fc.string({ unit: fc.constantFrom(...'0123456789abcdef'), minLength: 8, maxLength: 17 }).map((h) => `i-${h}`), text)),
  state: maybe(stateName),
  zone: maybe(text),
  privateIp: maybe(ip),
  publicIp: maybe(ip),
  ipv6: maybe(text),
  vpcId: maybe(text),
  subnetId: maybe(text),
  tags: maybe(fc.array(fc.record({ key: maybe(text), value: maybe(text) }), { maxLength: 5 })),
  interfaces: maybe(fc.array(networkInterface, { maxLength: 3 })),
  noise: fc.boolean(),
});
const answer = fc.record({
  header: fc.boolean(),
  requestId: maybe(fc.uuid()),
  reservations: maybe(fc.array(fc.record({ owner: maybe(fc.constantFrom('123456789012', '210987654321')), instances: fc.array(instance, { maxLength: 4 }) }), { maxLength: 4 })),
  nextToken: maybe(text),
  style: fc.record({ pretty: fc.boolean(), selfClosing: fc.boolean(), comments: fc.boolean(), choices: fc.array(fc.nat(), { maxLength: 8 }) }),
});

type Generated<A> = A extends fc.Arbitrary<infer T> ? T : never;

function instanceXml(w: Writer, i: Generated<typeof instance>): string[] {
  // Members the SDK knows and this reading skips, among the ones it reads.
  const noise = i.noise
    ? [
        w.el('imageId', 'ami-0abcdef1234567890'),
        w.items('groupSet', [[w.el('groupId', 'sg-1'), w.el('groupName', 'default')]]),
        w.el('launchTime', '2024-05-01T09:00:00.000Z'),
        w.items('blockDeviceMapping', [[w.el('deviceName', '/dev/xvda'), w.group('ebs', [w.el('volumeId', 'vol-1'), w.el('status', 'attached')])]]),
        w.group('monitoring', [w.el('state', 'disabled')]),
      ]
    : [];
  return [
    ...noise.slice(0, 2),
    w.el('instanceId', i.id),
    i.state === undefined ? '' : w.group('instanceState', [w.el('code', '16'), w.el('name', i.state)]),
    w.el('privateDnsName', i.noise ? 'ip-10-0-0-1.ec2.internal' : undefined),
    i.zone === undefined ? '' : w.group('placement', [w.el('availabilityZone', i.zone), w.el('tenancy', 'default')]),
    w.el('privateIpAddress', i.privateIp),
    w.el('ipAddress', i.publicIp),
    w.el('ipv6Address', i.ipv6),
    ...noise.slice(2),
    w.el('subnetId', i.subnetId),
    w.el('vpcId', i.vpcId),
    i.tags === undefined ? '' : w.items('tagSet', i.tags.map((t) => [w.el('key', t.key), w.el('value', t.value)])),
    i.interfaces === undefined
      ? ''
      : w.items(
          'networkInterfaceSet',
          i.interfaces.map((ni) => [
            w.el('networkInterfaceId', 'eni-1'),
            w.el('privateIpAddress', ni.ip),
            ni.deviceIndex === undefined && ni.cardIndex === undefined
              ? ''
              : w.group('attachment', [w.el('deviceIndex', ni.deviceIndex), w.el('networkCardIndex', ni.cardIndex), w.el('status', 'attached')]),
            ni.publicIp === undefined ? '' : w.group('association', [w.el('publicIp', ni.publicIp), w.el('ipOwnerId', 'amazon')]),
            w.items(
              'privateIpAddressesSet',
              ni.addresses.map((a) => [w.el('privateIpAddress', a.ip), w.el('primary', a.primary), a.publicIp === undefined ? '' : w.group('association', [w.el('publicIp', a.publicIp)])]),
            ),
            w.items('ipv6AddressesSet', ni.ipv6s.map((v6) => [w.el('ipv6Address', v6)])),
          ]),
        ),
  ];
}

function answerXml(a: Generated<typeof answer>): string {
  const w = new Writer(a.style);
  const reservations =
    a.reservations === undefined
      ? ''
      : w.items(
          'reservationSet',
          a.reservations.map((r) => [w.el('reservationId', 'r-1'), w.el('ownerId', r.owner), w.items('instancesSet', r.instances.map((i) => instanceXml(w, i)))]),
        );
  const root = w.group('DescribeInstancesResponse', [w.el('requestId', a.requestId), reservations, w.el('nextToken', a.nextToken)]);
  return `${a.header ? '<?xml version="1.0" encoding="UTF-8"?>\n' : ''}${root.replace('<DescribeInstancesResponse>', '<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">')}`;
}

/**
 * An answer whose edges are as EC2 writes them: the request id first, the reservations, then the
 * next token (plain, or none), with nothing between them and the root's tags. Its reservations are
 * read only when asked for.
 */
function ec2AnswerXml(a: Generated<typeof answer>, token: string | undefined): string {
  const inner = answerXml({ ...a, requestId: undefined, nextToken: undefined, reservations: a.reservations ?? [] })
    .replace(/^[^]*?<DescribeInstancesResponse[^>]*>/, '')
    .replace(/<\/DescribeInstancesResponse>$/, '');
  const set = /<reservationSet\/>/.test(inner) ? '<reservationSet></reservationSet>' : inner.replace(/^\s*(<!-- note -->)?\s*/, '');
  const sep = a.style.pretty ? '\n  ' : '';
  return `${a.header ? '<?xml version="1.0" encoding="UTF-8"?>\n' : ''}<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">${sep}<requestId>${a.requestId ?? 'req-1'}</requestId>${sep}${set}${sep}${token === undefined ? '' : `<nextToken>${token}</nextToken>`}${a.style.pretty ? '\n' : ''}</DescribeInstancesResponse>${a.style.pretty ? '\n' : ''}`;
}

/** The bytes in chunks of `size`, as a body arrives. */
async function* inChunks(bytes: Buffer, size: number): AsyncGenerator<Buffer> {
  for (let at = 0; at < bytes.length; at += size) yield bytes.subarray(at, at + size);
}

const ERROR_BODY = (code: string) => `<?xml version="1.0" encoding="UTF-8"?>\n<Response><Errors><Error><Code>${code}</Code><Message>try again</Message></Error></Errors><RequestID>req-1</RequestID></Response>`;

describe('a DescribeInstances answer read as it streams', () => {
  it('maps every answer as the SDK’s own reading of it maps (owners, instances or their problems, next token, request id)', async () => {
    await fc.assert(
      fc.asyncProperty(answer, async (a) => {
        const body = answerXml(a);
        const { sdk: expected, ours: actual } = await both({ status: 200, body });
        expect(expected.ok, `the SDK read ${body}`).toBe(true);
        expect(actual).toEqual(expected);
      }),
      { numRuns: 300 },
    );
  });

  it('reads the reservations of an answer with EC2\'s edges only when asked, and maps them as the SDK does', async () => {
    const plainToken = fc.option(fc.string({ unit: fc.constantFrom(...'abcXYZ019+/='), minLength: 1, maxLength: 40 }), { nil: undefined });
    await fc.assert(
      fc.asyncProperty(answer, plainToken, async (a, token) => {
        const body = ec2AnswerXml(a, token);
        queue.length = 0;
        queue.push({ status: 200, body });
        const page = await ours.send(new DescribeInstancesCommand({}));
        // Nothing of the reservations is there until they are asked for.
        expect(page.Reservations, body).toBeUndefined();
        expect(page.NextToken).toBe(token);
        const { sdk: expected, ours: actual } = await both({ status: 200, body });
        expect(expected.ok, `the SDK read ${body}`).toBe(true);
        expect(actual).toEqual(expected);
      }),
      { numRuns: 200 },
    );
  });

  it.each([
    ['a second request id', '<DescribeInstancesResponse><requestId>first</requestId><requestId>second</requestId><reservationSet></reservationSet></DescribeInstancesResponse>', undefined],
    ['a next token before the reservations', '<DescribeInstancesResponse><requestId>r-1</requestId><nextToken>more</nextToken><reservationSet></reservationSet></DescribeInstancesResponse>', undefined],
  ])('an answer whose edges say other than the whole (%s) fails when its reservations are read, never ends a listing early', async (_name, body, edgeToken) => {
    queue.length = 0;
    queue.push({ status: 200, body });
    const page = await ours.send(new DescribeInstancesCommand({}));
    expect(page.NextToken).toBe(edgeToken);
    await expect(reservationsOf(page)).rejects.toThrow(InstancesAnswerError);
  });

  it('reads the same answer the same whatever chunks it arrives in', async () => {
    await fc.assert(
      fc.asyncProperty(answer, fc.integer({ min: 1, max: 64 }), async (a, size) => {
        const bytes = Buffer.from(answerXml(a));
        expect(await readInstancesAnswer(inChunks(bytes, size))).toEqual(await readInstancesAnswer(bytes));
      }),
      { numRuns: 200 },
    );
  });

  it('hands each reservation on as soon as it is read, in order, and keeps none in the answer', async () => {
    await fc.assert(
      fc.asyncProperty(answer, fc.integer({ min: 1, max: 64 }), async (a, size) => {
        const bytes = Buffer.from(answerXml(a));
        const whole = await readInstancesAnswer(bytes);
        const handed: Reservation[] = [];
        const streamed = await readInstancesAnswer(inChunks(bytes, size), (reservation) => handed.push(reservation));
        expect(handed).toEqual(whole.reservations);
        expect(streamed).toEqual({ ...whole, reservations: [] });
      }),
      { numRuns: 200 },
    );
  });

  it('stops reading an answer at what the taker of its reservations throws', async () => {
    const body = answerXml({ header: false, requestId: 'req-3', reservations: [{ owner: '123456789012', instances: [] }, { owner: '210987654321', instances: [] }], nextToken: undefined, style: { pretty: false, selfClosing: false, comments: false, choices: [] } });
    const owners: Array<string | undefined> = [];
    const refused = new Error('another account');
    await expect(
      readInstancesAnswer(Buffer.from(body), (reservation) => {
        owners.push(reservation.OwnerId);
        if (reservation.OwnerId !== '123456789012') throw refused;
      }),
    ).rejects.toBe(refused);
    expect(owners).toEqual(['123456789012', '210987654321']);
  });

  it('hands on the reservations of a page read when asked as reservationsOf gives them, and fails where it fails', async () => {
    await fc.assert(
      fc.asyncProperty(answer, async (a) => {
        const body = ec2AnswerXml(a, undefined);
        const page = async () => {
          queue.length = 0;
          queue.push({ status: 200, body });
          return ours.send(new DescribeInstancesCommand({}));
        };
        const handed: Reservation[] = [];
        await eachReservation(await page(), (reservation) => handed.push(reservation));
        expect(handed).toEqual(await reservationsOf(await page()));
      }),
      { numRuns: 100 },
    );
    queue.length = 0;
    queue.push({ status: 200, body: '<DescribeInstancesResponse><requestId>first</requestId><requestId>second</requestId><reservationSet></reservationSet></DescribeInstancesResponse>' });
    await expect(eachReservation(await ours.send(new DescribeInstancesCommand({})), () => undefined)).rejects.toThrow(InstancesAnswerError);
  });

  it('refuses to read a page again once its reservations were handed on, rather than give none', async () => {
    const body = ec2AnswerXml({ header: false, requestId: 'req-4', reservations: [{ owner: '123456789012', instances: [] }], nextToken: undefined, style: { pretty: false, selfClosing: false, comments: false, choices: [] } }, undefined);
    const page = async () => {
      queue.length = 0;
      queue.push({ status: 200, body });
      return ours.send(new DescribeInstancesCommand({}));
    };
    const streamed = await page();
    const handed: Reservation[] = [];
    await eachReservation(streamed, (reservation) => handed.push(reservation));
    expect(handed).toHaveLength(1);
    await expect(reservationsOf(streamed)).rejects.toThrow(/read already/);
    await expect(eachReservation(streamed, () => undefined)).rejects.toThrow(/read already/);

    const whole = await page();
    expect(await reservationsOf(whole)).toHaveLength(1);
    expect(await reservationsOf(whole)).toHaveLength(1);
    await expect(eachReservation(whole, () => undefined)).rejects.toThrow(/read already/);
  });

  it('leaves a failed answer to the SDK: the same error, and a throttled call or a dropped connection retried as before', async () => {
    const throttled = { status: 503, body: ERROR_BODY('RequestLimitExceeded') };
    const page = { status: 200, body: answerXml({ header: true, requestId: 'req-2', reservations: [{ owner: '123456789012', instances: [] }], nextToken: 'tok', style: { pretty: false, selfClosing: false, comments: false, choices: [] } }) };
    const retried = await both(throttled, page);
    expect(retried.ours).toEqual(retried.sdk);
    expect(retried.ours).toMatchObject({ ok: true, view: { nextToken: 'tok', reservations: [{ owner: '123456789012', instances: [] }] } });

    const dropped = await both({ ...page, cut: true }, page);
    expect(dropped.ours).toEqual(dropped.sdk);
    expect(dropped.ours).toMatchObject({ ok: true, view: { nextToken: 'tok' } });

    const refused = await both({ status: 401, body: ERROR_BODY('AuthFailure') });
    expect(refused.ours).toEqual(refused.sdk);
    expect(refused.ours).toMatchObject({ ok: false, name: 'AuthFailure' });
  });

  it.each([
    ['not XML', 'Service Unavailable'],
    ['cut short', '<DescribeInstancesResponse><reservationSet><item><ownerId>1</ownerId>'],
    ['mismatched tags', '<DescribeInstancesResponse><reservationSet></instancesSet></DescribeInstancesResponse>'],
    ['a value holding an element', '<DescribeInstancesResponse><reservationSet><item><ownerId><x>1</x></ownerId></item></reservationSet></DescribeInstancesResponse>'],
  ])('fails a successful answer that is %s, as the SDK does', async (_, body) => {
    const { sdk: expected, ours: actual } = await both({ status: 200, body });
    expect(expected.ok).toBe(false);
    expect(actual).toMatchObject({ ok: false, name: 'InstancesAnswerError' });
  });

  it('fails a successful answer that is not a DescribeInstances answer, which the SDK would read as a page without instances', async () => {
    const body = ERROR_BODY('InternalError');
    const { sdk: lenient, ours: actual } = await both({ status: 200, body });
    expect(lenient).toMatchObject({ ok: true, view: { reservations: [] } });
    expect(actual).toMatchObject({ ok: false, name: 'InstancesAnswerError', message: expect.stringContaining('<Response>') });
  });

  it('fails an answer that is not UTF-8', async () => {
    const body = Buffer.concat([Buffer.from('<DescribeInstancesResponse><requestId>'), Buffer.from([0xff, 0xfe]), Buffer.from('</requestId></DescribeInstancesResponse>')]);
    await expect(readInstancesAnswer(body)).rejects.toThrow(InstancesAnswerError);
  });
});

describe('what a read answer holds', () => {
  it('its values do not keep the chunks they were read from (a listing keeps every instance id to the end)', async () => {
    setFlagsFromString('--expose-gc');
    const gc = runInNewContext('gc') as () => void;
    // 400 answers of one instance each, each arriving as one 64 KiB chunk, as from a socket.
    const pad = ' '.repeat(64 * 1024);
    const answerOf = (n: number) =>
      `<DescribeInstancesResponse><reservationSet><item><instancesSet><item><instanceId>i-${n.toString(16).padStart(17, '0')}</instanceId><vpcId>vpc-0123456789abcdef0</vpcId></item></instancesSet></item></reservationSet>${pad}</DescribeInstancesResponse>`;
    gc();
    const before = process.memoryUsage().heapUsed;
    const kept: string[] = [];
    for (let n = 0; n < 400; n++) {
      const answer = await readInstancesAnswer((async function* () {
        yield answerOf(n);
      })());
      const i = answer.reservations[0]!.Instances![0]!;
      kept.push(i.InstanceId!, i.VpcId!);
    }
    gc();
    const held = process.memoryUsage().heapUsed - before;
    expect(kept).toHaveLength(800);
    // The values themselves take about 50 KiB; the chunks would take 25 MiB.
    expect(held).toBeLessThan(4 * 2 ** 20);
  });
});
