// A JSON document with one large list read as its bytes arrive: a list answer of the Kubernetes API
// (`{"kind": …, "metadata": {…}, "items": [{…}, …]}`), or a JSON inventory of the static provider
// (`{"machines": [{…}, …]}` or a bare `[{…}, …]`). Each item's text (or its bytes) is handed on by
// itself, and the rest (the document without its items) is kept to be parsed at the end. A page of 1000
// WorkloadEntries is 1.2-3 MB of JSON, an inventory of 100,000 machines tens of MB; read as one
// string, such a text lands in V8's large-object space, which only a full collection frees. An
// item's text is a few kilobytes: a young object, freed by the next scavenge.
//
// Only the structure is followed here (strings, escapes, nesting); every text handed on is parsed
// by JSON.parse, which refuses anything that is not JSON.

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_OBJECT = 0x7b;
const CLOSE_OBJECT = 0x7d;
const OPEN_LIST = 0x5b;
const CLOSE_LIST = 0x5d;

/** Whether the string between the quotes at `open` and `close - 1` is `key` (its bytes as they are: a key with escapes is not taken). */
function isKey(chunk: Buffer, open: number, close: number, key: Buffer): boolean {
  // Byte by byte: the keys are a few bytes long, and most strings differ in length or first byte
  // (Buffer#compare checks its arguments and crosses into C++ for each of a page's many keys).
  if (close - open - 2 !== key.length) return false;
  for (let k = 0; k < key.length; k++) if (chunk[open + 1 + k] !== key[k]) return false;
  return true;
}

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/** Which list of a document is split into its items. */
export interface JsonListOptions {
  /** The top-level key of the list (default `items`). */
  key?: string;
  /** A document that is a list at the top is that list (default: its items are left in the rest). */
  bareList?: boolean;
  /**
   * A member of an object member of each item (`['metadata', 'managedFields']`) whose value, a
   * list, is left out of the item's bytes (ofBytes only), so that it is never parsed. Left out
   * where the item came in one chunk and is written as APIs write JSON (`"key":[`, no space); kept
   * otherwise: leaving it out only saves work.
   */
  leaveOut?: readonly [string, string];
}

/**
 * Receives an item's bytes, undecoded: `chunk` from `start` to `end`, less the bytes from `cutFrom`
 * to `cutTo` (a member left out; none when the two are equal). They are valid during the call only:
 * `chunk` is the answer's, or a copy made when the item spans chunks.
 */
export type ItemBytes = (chunk: Buffer, start: number, end: number, cutFrom: number, cutTo: number, line: number) => void;

/** An item's bytes as one buffer: a view of the chunk, or a copy when a member is left out. */
function joined(chunk: Buffer, start: number, end: number, cutFrom: number, cutTo: number): Buffer {
  return cutFrom === cutTo ? chunk.subarray(start, end) : Buffer.concat([chunk.subarray(start, cutFrom), chunk.subarray(cutTo, end)]);
}

/** Splits a document's bytes into its list's items' texts and the rest. */
export class JsonListSplitter {
  readonly #onItem: (text: string, line: number) => void;
  /** Set by `ofBytes`: each item's bytes are handed on undecoded. */
  #onBytes: ItemBytes | undefined;
  readonly #listKey: string;
  readonly #bareList: boolean;
  /** The depth of the list's items: 2 inside a top-level object, 1 in a bare list. */
  #itemDepth = 2;
  /** The line of the current byte (1-based; only newlines between tokens are counted: JSON has none inside strings). */
  #line = 1;
  /** The line where the current item starts. */
  #itemLine = 1;
  /** The top-level keys in document order, with their lines. */
  readonly #keys: Array<{ key: string; line: number }> = [];
  /** In the list: what came last, `[`, an item or a comma (a comma must be between two items). */
  #listLast: 'open' | 'item' | 'comma' = 'open';
  /** A comma out of place in the list (JSON.parse of the rest cannot see it: the list is left empty there). */
  #broken = false;
  /** Open objects and lists around the current byte. */
  #depth = 0;
  #inString = false;
  #escaped = false;
  /** At the top level, the next string is a key. */
  #expectKey = false;
  /** The bytes of a top-level key being read; undefined when none is. */
  #key: number[] | undefined;
  #lastKey = '';
  /** The top-level value about to start is that of the list's key. */
  #itemsNext = false;
  /** Inside the list: #itemDepth is its items' level. */
  #inItems = false;
  /** Parts of the current item from earlier chunks. */
  #itemParts: Buffer[] = [];
  /** Where the current item starts in the current chunk; -1 when no item is being read. */
  #itemStart = -1;
  /** True while an item is being read (it may have started in an earlier chunk). */
  #inItem = false;
  /** The list without its items. */
  #rest: Buffer[] = [];
  /** options.leaveOut, as bytes. */
  readonly #leaveOut: readonly [Buffer, Buffer] | undefined;
  /** Inside the current item, at its second level: the object is the value of leaveOut[0]. */
  #inParent = false;
  /** The value about to open at the item's first level is that of leaveOut[0]. */
  #parentNext = false;
  /** Where the member left out starts (its key's quote) in #leaveChunk; -1 when there is none. */
  #leaveFrom = -1;
  /** Where it ends (after its closing bracket); -1 while it is still being read. */
  #leaveTo = -1;
  #leaveChunk: Buffer | undefined;

  constructor(onItem: (text: string, line: number) => void, options: JsonListOptions = {}) {
    this.#onItem = onItem;
    this.#listKey = options.key ?? 'items';
    this.#bareList = options.bareList ?? false;
    this.#leaveOut = options.leaveOut && [Buffer.from(options.leaveOut[0]), Buffer.from(options.leaveOut[1])];
  }

  /** A splitter that hands on each item's bytes, not decoded (see ItemBytes). */
  static ofBytes(onItem: ItemBytes, options: JsonListOptions = {}): JsonListSplitter {
    const splitter = new JsonListSplitter(() => undefined, options);
    splitter.#onBytes = onItem;
    return splitter;
  }

  /** The top-level keys read so far, in order, with the line each is on. */
  get keys(): ReadonlyArray<{ key: string; line: number }> {
    return this.#keys;
  }

  /** Takes the next chunk of the answer. */
  write(chunk: Buffer): void {
    let restFrom = 0;
    if (this.#inItem) this.#itemStart = 0;
    const length = chunk.length;
    let i = 0;
    while (i < length) {
      if (this.#inString && this.#key === undefined) {
        // The rest of a string that began in an earlier chunk.
        i = this.#skipString(chunk, i);
        continue;
      }
      if (this.#inItem && this.#depth > this.#itemDepth) {
        // Inside an item, below its own level: only strings, nesting and lines matter here, so
        // its bytes are looked at in a loop of its own (most of a list's bytes are there).
        let depth = this.#depth;
        let line = this.#line;
        const top = this.#itemDepth;
        const leaveOut = this.#leaveOut;
        while (i < length) {
          const c = chunk[i++]!;
          if (c === QUOTE) {
            const quote = i - 1;
            // The string's contents, read here rather than in #skipString: most of an item's bytes.
            let closed = false;
            while (i < length) {
              const s = chunk[i++]!;
              if (s === QUOTE) {
                closed = true;
                break;
              }
              if (s === BACKSLASH) {
                if (i === length) {
                  this.#escaped = true;
                  break;
                }
                i++;
              }
            }
            if (!closed) {
              this.#inString = true;
              break;
            }
            // A key of the item or of its parent object (the string ends in this chunk, a colon after it).
            if (leaveOut !== undefined && depth <= top + 2 && chunk[i] === COLON) {
              if (depth === top + 1) this.#parentNext = isKey(chunk, quote, i, leaveOut[0]);
              else if (this.#inParent && this.#leaveFrom === -1 && chunk[i + 1] === OPEN_LIST && isKey(chunk, quote, i, leaveOut[1])) {
                this.#leaveFrom = quote;
                this.#leaveChunk = chunk;
              }
            }
          } else if (c === OPEN_OBJECT || c === OPEN_LIST) {
            if (++depth === top + 2) this.#inParent = this.#parentNext && c === OPEN_OBJECT;
          } else if (c === CLOSE_OBJECT || c === CLOSE_LIST) {
            if (--depth === top) break;
            if (depth === top + 2 && this.#leaveFrom !== -1 && this.#leaveTo === -1) this.#leaveTo = i;
            else if (depth === top + 1) this.#inParent = false;
          } else if (c === 0x0a) line++;
        }
        this.#depth = depth;
        this.#line = line;
        continue;
      }
      const b = chunk[i]!;
      i++;
      if (this.#inString) {
        // A top-level key: its bytes are kept, one at a time (there are a few in a document).
        if (this.#escaped) this.#escaped = false;
        else if (b === BACKSLASH) this.#escaped = true;
        else if (b === QUOTE) {
          this.#inString = false;
          // Its escapes undone as the parser undoes them: the bytes are a string's, as sent.
          this.#lastKey = JSON.parse(`"${Buffer.from(this.#key!).toString('utf8')}"`) as string;
          this.#keys.push({ key: this.#lastKey, line: this.#line });
          this.#key = undefined;
          continue;
        }
        this.#key!.push(b);
        continue;
      }
      if (isSpace(b)) {
        if (b === 0x0a) this.#line++;
        continue;
      }
      if (this.#inItems && this.#depth === this.#itemDepth) {
        if (b === COMMA || b === CLOSE_LIST) {
          if (this.#inItem) {
            this.#endItem(chunk, i - 1);
            // The comma after an item is left out with it.
            restFrom = b === COMMA ? i : i - 1;
          } else if (b === COMMA || this.#listLast === 'comma') {
            this.#broken = true;
          }
          if (b === COMMA) {
            this.#listLast = 'comma';
            continue;
          }
          this.#inItems = false;
        } else if (!this.#inItem) {
          this.#keepRest(chunk, restFrom, i - 1);
          this.#inItem = true;
          this.#itemStart = i - 1;
          this.#itemLine = this.#line;
        }
      }
      if (this.#itemsNext && this.#depth === 1) {
        this.#itemsNext = false;
        if (b === OPEN_LIST) this.#openList();
      }
      if (this.#bareList && this.#depth === 0 && b === OPEN_LIST) {
        this.#openList();
        this.#itemDepth = 1;
      }
      switch (b) {
        case QUOTE:
          this.#inString = true;
          if (this.#depth === 1 && this.#expectKey) {
            this.#expectKey = false;
            this.#key = [];
          }
          break;
        case OPEN_OBJECT:
        case OPEN_LIST:
          this.#depth++;
          if (this.#depth === 1) this.#expectKey = b === OPEN_OBJECT;
          break;
        case CLOSE_OBJECT:
        case CLOSE_LIST:
          this.#depth--;
          break;
        case COMMA:
          if (this.#depth === 1) this.#expectKey = true;
          break;
        case COLON:
          if (this.#depth === 1) this.#itemsNext = this.#lastKey === this.#listKey;
          break;
      }
    }
    if (this.#inItem) this.#itemParts.push(chunk.subarray(this.#itemStart));
    else this.#keepRest(chunk, restFrom, length);
  }

  /**
   * Reads on through a string's contents from `i` (the string is open, `#inString`) and gives where
   * reading goes on: after its closing quote, or the chunk's end (the string still open, its last
   * byte perhaps a backslash whose escaped byte is in the next chunk).
   */
  #skipString(chunk: Buffer, i: number): number {
    const length = chunk.length;
    if (this.#escaped) {
      if (i === length) return i;
      this.#escaped = false;
      i++;
    }
    while (i < length) {
      const c = chunk[i++]!;
      if (c === QUOTE) {
        this.#inString = false;
        return i;
      }
      if (c === BACKSLASH) {
        if (i === length) {
          this.#escaped = true;
          return i;
        }
        i++;
      }
    }
    return i;
  }

  #openList(): void {
    this.#inItems = true;
    this.#listLast = 'open';
  }

  #keepRest(chunk: Buffer, from: number, to: number): void {
    // A copy: a slice would keep the whole chunk.
    if (to > from) this.#rest.push(Buffer.from(chunk.subarray(from, to)));
  }

  #endItem(chunk: Buffer, end: number): void {
    const line = this.#itemLine;
    const start = this.#itemStart;
    const parts = this.#itemParts;
    if (parts.length > 0) {
      parts.push(chunk.subarray(start, end));
      this.#itemParts = [];
    }
    this.#inItem = false;
    this.#itemStart = -1;
    this.#listLast = 'item';
    let from = this.#leaveFrom;
    let to = this.#leaveTo;
    const leave = parts.length === 0 && from !== -1 && to !== -1 && this.#leaveChunk === chunk;
    this.#leaveFrom = -1;
    this.#leaveTo = -1;
    this.#leaveChunk = undefined;
    this.#inParent = false;
    this.#parentNext = false;
    if (this.#onBytes && leave) {
      // With the comma after it, or the one before it when it is the last member.
      if (chunk[to] === COMMA) to++;
      else if (chunk[from - 1] === COMMA) from--;
      this.#onBytes(chunk, start, end, from, to, line);
      return;
    }
    if (this.#onBytes) {
      if (parts.length === 0) this.#onBytes(chunk, start, end, start, start, line);
      else {
        const whole = Buffer.concat(parts);
        this.#onBytes(whole, 0, whole.length, 0, 0, line);
      }
    }
    else this.#onItem(parts.length === 0 ? chunk.toString('utf8', start, end) : Buffer.concat(parts).toString('utf8'), line);
  }

  /**
   * The document without its list's items (`"items": []`), once it has ended; a document cut short
   * leaves it unparseable. Throws a SyntaxError for a comma out of place between the items.
   */
  end(): string {
    if (this.#broken) throw new SyntaxError('a comma out of place in the list: commas go between items only');
    if (this.#inItem) this.#rest.push(...this.#itemParts);
    return Buffer.concat(this.#rest).toString('utf8');
  }
}

/** A list answer as read: its items' bytes, in order, and the rest (the list without its items), parsed. */
export interface JsonListAnswer {
  items: Buffer[];
  rest: unknown;
}

/**
 * One buffer that list answers' items are copied into, used again for each answer. Views of the
 * chunks a page came in would keep every chunk alive until the page is parsed, across the young
 * collections that run while it is read; copied here, each chunk is free once read. (A static
 * resync of 100,000 entries in `serve` peaked at 251-263 MiB with it, 270-282 without.) Reading an
 * answer into an arena reuses it: the items of the answer read into it before must not be used any
 * more.
 */
export class ByteArena {
  #buffer: Buffer;
  #used = 0;

  constructor(size = 256 * 1024) {
    this.#buffer = Buffer.allocUnsafeSlow(size);
  }

  /** Starts again at the beginning; what was copied in before is overwritten. */
  reset(): void {
    this.#used = 0;
  }

  /** A copy in the arena of `chunk` from `start` to `end`, less the bytes from `cutFrom` to `cutTo` (see ItemBytes). */
  copy(chunk: Buffer, start: number, end: number, cutFrom: number, cutTo: number): Buffer {
    const size = end - start - (cutTo - cutFrom);
    if (this.#used + size > this.#buffer.length) {
      // A larger buffer for this and later answers; the copies already made stay in the old one.
      this.#buffer = Buffer.allocUnsafeSlow(Math.max(this.#buffer.length * 2, size));
      this.#used = 0;
    }
    const at = this.#used;
    const buffer = this.#buffer;
    if (cutFrom === cutTo) chunk.copy(buffer, at, start, end);
    else {
      chunk.copy(buffer, at, start, cutFrom);
      chunk.copy(buffer, at + cutFrom - start, cutTo, end);
    }
    this.#used = at + size;
    return this.#buffer.subarray(at, at + size);
  }
}

/**
 * Reads a list answer from its chunks, leaving its items' JSON to be parsed when they are used: the
 * items' bytes are kept (outside V8's heap) until then, and each item's text is made only to be
 * parsed. With an arena, the items are copies in it (see ByteArena); without, views of the chunks.
 */
export async function readJsonList(chunks: AsyncIterable<Buffer>, options: JsonListOptions = {}, arena?: ByteArena): Promise<JsonListAnswer> {
  const items: Buffer[] = [];
  arena?.reset();
  const splitter = JsonListSplitter.ofBytes(
    arena ? (chunk, start, end, cutFrom, cutTo) => items.push(arena.copy(chunk, start, end, cutFrom, cutTo)) : (chunk, start, end, cutFrom, cutTo) => items.push(joined(chunk, start, end, cutFrom, cutTo)),
    options,
  );
  for await (const chunk of chunks) splitter.write(chunk);
  return { items, rest: JSON.parse(splitter.end()) };
}
