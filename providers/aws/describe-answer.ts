// EC2's DescribeInstances answer, read for the fields toInstance reads and nothing else. The SDK's
// own deserializer parses the whole body a character at a time and then builds every member of
// every instance from its schema: 100-130 ms per page of 1,000 instances here, against about 22 ms
// for this. The SDK keeps its client, signing, retries and error handling; this takes over only the
// reservations of an answer that succeeded (see readInstancesAnswers), and reads them when they
// are asked for, so that the next page is on its way meanwhile. A property test holds it to what
// the SDK makes of the same answer.
import { SaxesParser } from 'saxes';
import type {
  DescribeInstancesCommandOutput,
  EC2Client,
  Instance as Ec2Instance,
  InstanceIpv6Address,
  InstanceNetworkInterface,
  InstancePrivateIpAddress,
  InstanceStateName,
  Reservation,
  Tag,
} from '@aws-sdk/client-ec2';

/** What is read of one DescribeInstances answer. */
export interface InstancesAnswer {
  reservations: Reservation[];
  requestId?: string;
  nextToken?: string;
}

/** A successful answer that cannot be read: not UTF-8, not well-formed XML, or not a DescribeInstances answer. */
export class InstancesAnswerError extends Error {
  override name = 'InstancesAnswerError';
}

// What is done with an element, by where it is: one table per kind of element, made once. An
// element's frame names what its children are (an element that is none of them is skipped with
// everything inside), what an `<item>` child adds to its list, or what its text sets. Each frame
// works on a target: an item's is the member it added, and an element of fields passes its own
// on (`<placement>` sets the instance's Placement). No closure or object is made per element
// read, only the members and values the answer holds.
interface Frame {
  fields?: Readonly<Record<string, Frame>>;
  item?: { add: (target: never) => object; frame: Frame };
  value?: (target: never, text: string) => void;
}

// As the SDK's parser has it, a value that is only whitespace with a line break in it is empty
// (the indentation of a pretty-printed answer).
function textOf(text: string): string {
  return text.trim() === '' && text.includes('\n') ? '' : own(text);
}

/**
 * The text as a string of its own. V8 keeps a substring of 13 characters or more as a view of the
 * string it was cut from, here the chunk of the answer the parser was given: an instance id kept
 * for the listing's duplicate check would keep its whole chunk alive, and a 100,000-instance
 * listing would hold the text of every answer (230 MiB more measured in serve's provider thread).
 * JSON's round trip is the cheapest copy measured (about 0.1 µs).
 */
function own(text: string): string {
  return text.length < 13 ? text : (JSON.parse(JSON.stringify(text)) as string);
}

function value<T>(set: (target: T, text: string) => void): Frame {
  return { value: set as Frame['value'] };
}

function fields(children: Record<string, Frame>): Frame {
  return { fields: children };
}

/** Each `<item>` of a list adds one member, made when the item opens, and is read by `frame`. */
function list<T, M extends object>(add: (target: T) => M, frame: Frame): Frame {
  return { item: { add: add as (target: never) => object, frame } };
}

// Numbers and booleans are read as the SDK reads them (Number(), 'true' in any case), so that an
// answer maps the same whichever reads it.
function int(text: string): number {
  return Number(text);
}

function bool(text: string): boolean {
  return text.toLowerCase() === 'true';
}

function push<T>(to: T[], member: T): T {
  to.push(member);
  return member;
}

const ADDRESS: Frame = fields({
  privateIpAddress: value<InstancePrivateIpAddress>((a, t) => (a.PrivateIpAddress = t)),
  primary: value<InstancePrivateIpAddress>((a, t) => (a.Primary = bool(t))),
  association: fields({ publicIp: value<InstancePrivateIpAddress>((a, t) => ((a.Association ??= {}).PublicIp = t)) }),
});

const IPV6_ADDRESS: Frame = fields({ ipv6Address: value<InstanceIpv6Address>((a, t) => (a.Ipv6Address = t)) });

const NETWORK_INTERFACE: Frame = fields({
  privateIpAddress: value<InstanceNetworkInterface>((ni, t) => (ni.PrivateIpAddress = t)),
  attachment: fields({
    deviceIndex: value<InstanceNetworkInterface>((ni, t) => ((ni.Attachment ??= {}).DeviceIndex = int(t))),
    networkCardIndex: value<InstanceNetworkInterface>((ni, t) => ((ni.Attachment ??= {}).NetworkCardIndex = int(t))),
  }),
  association: fields({ publicIp: value<InstanceNetworkInterface>((ni, t) => ((ni.Association ??= {}).PublicIp = t)) }),
  privateIpAddressesSet: list((ni: InstanceNetworkInterface) => push((ni.PrivateIpAddresses ??= []), {}), ADDRESS),
  ipv6AddressesSet: list((ni: InstanceNetworkInterface) => push((ni.Ipv6Addresses ??= []), {}), IPV6_ADDRESS),
});

const TAG: Frame = fields({ key: value<Tag>((tag, t) => (tag.Key = t)), value: value<Tag>((tag, t) => (tag.Value = t)) });

const INSTANCE: Frame = fields({
  instanceId: value<Ec2Instance>((i, t) => (i.InstanceId = t)),
  instanceState: fields({ name: value<Ec2Instance>((i, t) => ((i.State ??= {}).Name = t as InstanceStateName)) }),
  placement: fields({ availabilityZone: value<Ec2Instance>((i, t) => ((i.Placement ??= {}).AvailabilityZone = t)) }),
  privateIpAddress: value<Ec2Instance>((i, t) => (i.PrivateIpAddress = t)),
  ipAddress: value<Ec2Instance>((i, t) => (i.PublicIpAddress = t)),
  ipv6Address: value<Ec2Instance>((i, t) => (i.Ipv6Address = t)),
  vpcId: value<Ec2Instance>((i, t) => (i.VpcId = t)),
  subnetId: value<Ec2Instance>((i, t) => (i.SubnetId = t)),
  tagSet: list((i: Ec2Instance) => push((i.Tags ??= []), {} as Tag), TAG),
  networkInterfaceSet: list((i: Ec2Instance) => push((i.NetworkInterfaces ??= []), {}), NETWORK_INTERFACE),
});

const RESERVATION: Frame = fields({
  ownerId: value<Reservation>((r, t) => (r.OwnerId = t)),
  instancesSet: list((r: Reservation) => push((r.Instances ??= []), {}), INSTANCE),
});

const ANSWER_BODY: Frame = fields({
  requestId: value<InstancesAnswer>((answer, t) => (answer.requestId = t)),
  nextToken: value<InstancesAnswer>((answer, t) => (answer.nextToken = t)),
  reservationSet: list((answer: InstancesAnswer) => push(answer.reservations, {}), RESERVATION),
});

/**
 * Reads a DescribeInstances answer from its body's chunks as they come. Throws
 * InstancesAnswerError for a body that is not well-formed XML or not a DescribeInstances answer.
 * With `each`, every reservation is handed to it as soon as it has been read, and is not kept in
 * the answer: a page's reservations then never live together, so that the young collections that
 * run while a page is read free them, where a page's worth outlived two of them and was moved to
 * the old generation (1.8 KB an instance, a mark-compact every page or two in a provider thread).
 * What `each` throws ends the reading.
 */
export async function readInstancesAnswer(body: AsyncIterable<Uint8Array | string> | Uint8Array | string, each?: (reservation: Reservation) => void): Promise<InstancesAnswer> {
  const answer: InstancesAnswer = { reservations: [] };
  // The open elements, innermost last: each one's frame (undefined: skipped) and target.
  const frames: Array<Frame | undefined> = [];
  const targets: object[] = [];
  let text = '';
  const parser = new SaxesParser({ fileName: 'DescribeInstances answer' });
  parser.on('error', (err) => {
    throw new InstancesAnswerError(err.message, { cause: err });
  });
  parser.on('opentag', (tag) => {
    const depth = frames.length;
    if (depth === 0) {
      if (tag.name !== 'DescribeInstancesResponse') fail(`the answer's root element is <${tag.name}>, not <DescribeInstancesResponse>`);
      frames.push(ANSWER_BODY);
      targets.push(answer);
      return;
    }
    const top = frames[depth - 1];
    const target = targets[depth - 1]!;
    // The SDK fails such an answer too: a value cannot be read from an element.
    if (top?.value) throw new InstancesAnswerError(`an element <${tag.name}> is inside a value`);
    if (top?.item !== undefined && tag.name === 'item') {
      frames.push(top.item.frame);
      targets.push(top.item.add(target as never));
      return;
    }
    const frame = top?.fields !== undefined && Object.hasOwn(top.fields, tag.name) ? top.fields[tag.name] : undefined;
    if (frame?.value) text = '';
    frames.push(frame);
    targets.push(target);
  });
  const onText = (t: string): void => {
    if (frames[frames.length - 1]?.value) text += t;
  };
  parser.on('text', onText);
  parser.on('cdata', onText);
  parser.on('closetag', () => {
    const frame = frames.pop();
    const target = targets.pop()!;
    frame?.value?.(target as never, textOf(text));
    // A reservation's item closes at the depth of the answer's reservationSet's items.
    if (each !== undefined && frame === RESERVATION && frames.length === 2) each(answer.reservations.pop()!);
  });
  const decoder = new TextDecoder('utf-8', { fatal: true });
  try {
    if (typeof body === 'string') parser.write(body);
    else if (body instanceof Uint8Array) parser.write(decoder.decode(body));
    else for await (const chunk of body) parser.write(typeof chunk === 'string' ? chunk : decoder.decode(chunk, { stream: true }));
    parser.write(decoder.decode()).close();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ERR_ENCODING_INVALID_ENCODED_DATA') throw new InstancesAnswerError('the answer is not UTF-8', { cause: err });
    throw err;
  }
  return answer;
}

function fail(message: string): never {
  throw new InstancesAnswerError(message);
}

/**
 * Where the inner half of readInstancesAnswers leaves an answer on the response it came in; the
 * outer half takes it off as it puts the reservations into the output.
 */
const ANSWER = Symbol('instancesAnswer');

/** An answer read at once, or one whose reservations are read when asked for (see reservationsOf). */
type Taken = { answer: InstancesAnswer } | { later: Later };

/** Reads a page's reservations, once: all of them, or each handed on as it is read (see readInstancesAnswer). */
type Later = (each?: (reservation: Reservation) => void) => Promise<Reservation[]>;

type WithAnswer = { [ANSWER]?: Taken };

/** On a page whose reservations are read when asked for: how to read them. */
const LATER = Symbol('reservationsLater');

type WithLater = { [LATER]?: Later };

/**
 * The reservations of a DescribeInstances page. A page of a client with readInstancesAnswers is
 * mostly read here rather than as it arrives: the paginator asks for the next page meanwhile.
 */
export async function reservationsOf(page: DescribeInstancesCommandOutput): Promise<Reservation[]> {
  const later = (page as WithLater)[LATER];
  return later === undefined ? (page.Reservations ?? []) : later();
}

/**
 * The reservations of a DescribeInstances page, each handed to `each` as soon as it is read, none
 * kept (see readInstancesAnswer); fails as reservationsOf does, or with what `each` throws. A page
 * read when asked for is read once: reading it again after this, or with this after reservationsOf,
 * fails rather than give nothing.
 */
export async function eachReservation(page: DescribeInstancesCommandOutput, each: (reservation: Reservation) => void): Promise<void> {
  const later = (page as WithLater)[LATER];
  if (later === undefined) {
    for (const reservation of page.Reservations ?? []) each(reservation);
    return;
  }
  await later(each);
}

/** The envelope handed to the SDK's deserializer in place of a body already read: no reservations. */
function envelope(answer: { requestId?: string; nextToken?: string }): Uint8Array {
  const element = (name: string, text: string | undefined) => (text === undefined ? '' : `<${name}>${escapeXml(text)}</${name}>`);
  return new TextEncoder().encode(
    `<DescribeInstancesResponse xmlns="http://ec2.amazonaws.com/doc/2016-11-15/">${element('requestId', answer.requestId)}${element('nextToken', answer.nextToken)}</DescribeInstancesResponse>`,
  );
}

// A carriage return as a reference: written raw, XML would read it as a line feed.
function escapeXml(text: string): string {
  return text.replaceAll('&', '&amp;').replaceAll('<', '&lt;').replaceAll('>', '&gt;').replaceAll('\r', '&#13;');
}

function succeeded(response: unknown): response is { statusCode: number; body: AsyncIterable<Uint8Array> | Uint8Array | string } {
  const r = response as { statusCode?: unknown; body?: unknown } | undefined;
  return typeof r?.statusCode === 'number' && r.statusCode >= 200 && r.statusCode < 300 && r.body != null;
}

async function bytesOf(body: AsyncIterable<Uint8Array | string> | Uint8Array | string): Promise<Uint8Array[]> {
  if (typeof body === 'string') return [Buffer.from(body)];
  if (body instanceof Uint8Array) return [body];
  const chunks: Uint8Array[] = [];
  for await (const chunk of body) chunks.push(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
  return chunks;
}

/** The first (or last) `n` bytes or a few more, as text (a character cut at the edge is lost). */
function edge(chunks: Uint8Array[], n: number, end: boolean): string {
  const picked: Uint8Array[] = [];
  let length = 0;
  for (let i = 0; i < chunks.length && length < n; i++) {
    const chunk = chunks[end ? chunks.length - 1 - i : i]!;
    if (end) picked.unshift(chunk);
    else picked.push(chunk);
    length += chunk.length;
  }
  const bytes = Buffer.concat(picked);
  return (end ? bytes.subarray(Math.max(0, bytes.length - n)) : bytes.subarray(0, n)).toString('utf8');
}

// The request id opens an answer of EC2's and the next token, when there is one, closes it. Only
// values without references, carriage returns or only whitespace are taken from the text as it is.
const HEAD = /^\uFEFF?(?:<\?xml[^>]*\?>)?\s*<DescribeInstancesResponse(?:\s[^>]*)?>\s*<requestId>([^<&\r]*)<\/requestId>/;
const TAIL = /(?:<nextToken>([^<&\r]*)<\/nextToken>|<\/reservationSet>)\s*<\/DescribeInstancesResponse>\s*$/;

/**
 * The request id and next token of an answer, read from its first and last bytes alone; undefined
 * when they are not written as EC2 writes them. Text at the very end of a document, just before
 * its root closes, can be neither in a comment nor in a CDATA section; and reading the whole answer
 * later checks both values all the same.
 */
function edges(chunks: Uint8Array[]): { requestId: string; nextToken?: string } | undefined {
  const requestId = HEAD.exec(edge(chunks, 1024, false))?.[1];
  const tail = TAIL.exec(edge(chunks, 8192, true));
  if (requestId === undefined || tail === null) return undefined;
  const nextToken = tail[1];
  const blank = (t: string | undefined) => t !== undefined && t !== '' && t.trim() === '';
  if (blank(requestId) || blank(nextToken)) return undefined;
  return nextToken === undefined ? { requestId } : { requestId, nextToken };
}

/** The chunks one by one, the event loop running between two (and so the request for the next page). */
async function* turnByTurn(chunks: Uint8Array[]): AsyncGenerator<Uint8Array> {
  for (let i = 0; i < chunks.length; i++) {
    await new Promise<void>((resolve) => setImmediate(resolve));
    yield chunks[i]!;
    chunks[i] = new Uint8Array(0);
  }
}

/**
 * Has the client read the reservations of its DescribeInstances answers with readInstancesAnswer.
 * Two steps around the SDK's deserializer: the inner one takes a successful answer's body and hands
 * the SDK an envelope with the same request id and next token and no reservations; the outer one
 * gives the output its reservations. Everything else stays the SDK's: a failed answer (its error,
 * its retry), the metadata, the next token, any other command.
 *
 * Where the request id and next token can be seen at the edges of the body (as EC2 writes them),
 * the reservations are read only when reservationsOf asks for them, so that the next page is asked
 * for while a page is read; reading them then fails with InstancesAnswerError if the whole answer
 * says another request id or next token. Otherwise the answer is read at once.
 */
export function readInstancesAnswers(client: EC2Client): void {
  client.middlewareStack.add(
    (next, context) => async (args) => {
      const result = await next(args);
      if (context.commandName !== 'DescribeInstancesCommand' || !succeeded(result.response)) return result;
      const chunks = await bytesOf(result.response.body);
      const seen = edges(chunks);
      if (seen === undefined) {
        const answer = await readInstancesAnswer((async function* () {
          yield* chunks;
        })());
        (result.response as WithAnswer)[ANSWER] = { answer };
        result.response.body = envelope(answer);
        return result;
      }
      let read: Promise<Reservation[]> | undefined;
      let handedOn = false;
      const later: Later = (each) => {
        // Reservations handed on are not kept: a second reading would find none and say nothing.
        if (read !== undefined && (handedOn || each !== undefined)) return Promise.reject(new Error('the reservations of this DescribeInstances page were read already; a page is read once'));
        handedOn = each !== undefined;
        return (read ??= readInstancesAnswer(turnByTurn(chunks), each).then((answer) => {
          if (answer.requestId !== seen.requestId || answer.nextToken !== seen.nextToken) {
            throw new InstancesAnswerError(
              `the answer's request id and next token (${answer.requestId}, ${answer.nextToken ?? 'none'}) are not those read at its edges (${seen.requestId}, ${seen.nextToken ?? 'none'})`,
            );
          }
          return answer.reservations;
        }));
      };
      (result.response as WithAnswer)[ANSWER] = { later };
      result.response.body = envelope(seen);
      return result;
    },
    { step: 'deserialize', priority: 'low', name: 'readInstancesAnswer' },
  );
  client.middlewareStack.add(
    (next) => async (args) => {
      const result = await next(args);
      const response = result.response as WithAnswer | undefined;
      const taken = response?.[ANSWER];
      if (taken) {
        delete response[ANSWER];
        const output = result.output as DescribeInstancesCommandOutput & WithLater;
        if ('answer' in taken) output.Reservations = taken.answer.reservations;
        else Object.defineProperty(output, LATER, { value: taken.later, enumerable: false });
      }
      return result;
    },
    { step: 'deserialize', priority: 'high', name: 'instancesAnswerOutput' },
  );
}
