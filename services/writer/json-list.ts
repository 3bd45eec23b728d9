// A list answer of the Kubernetes API (`{"kind": …, "metadata": {…}, "items": [{…}, …]}`) read
// as its bytes arrive: each item's text is handed on by itself, and the rest (the list without its
// items) is kept to be parsed at the end. A page of 500 WorkloadEntries is 1-1.5 MB of JSON; read
// as one string it lands in V8's large-object space, which only a full collection frees, so a
// listing of 100,000 entries piled up tens of megabytes of page texts between two collections.
// An item's text is a few kilobytes: a young object, freed by the next scavenge.
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

function isSpace(b: number): boolean {
  return b === 0x20 || b === 0x0a || b === 0x0d || b === 0x09;
}

/** Splits a list answer's bytes into its items' texts and the rest. */
export class JsonListSplitter {
  readonly #onItem: (text: string) => void;
  /** Open objects and lists around the current byte. */
  #depth = 0;
  #inString = false;
  #escaped = false;
  /** At the top level, the next string is a key. */
  #expectKey = false;
  /** The bytes of a top-level key being read; undefined when none is. */
  #key: number[] | undefined;
  #lastKey = '';
  /** The top-level value about to start is that of `items`. */
  #itemsNext = false;
  /** Inside the items list: depth 2 is its items' level. */
  #inItems = false;
  /** Parts of the current item from earlier chunks. */
  #itemParts: Buffer[] = [];
  /** Where the current item starts in the current chunk; -1 when no item is being read. */
  #itemStart = -1;
  /** True while an item is being read (it may have started in an earlier chunk). */
  #inItem = false;
  /** The list without its items. */
  #rest: Buffer[] = [];

  constructor(onItem: (text: string) => void) {
    this.#onItem = onItem;
  }

  /** Takes the next chunk of the answer. */
  write(chunk: Buffer): void {
    let restFrom = 0;
    if (this.#inItem) this.#itemStart = 0;
    for (let i = 0; i < chunk.length; i++) {
      const b = chunk[i]!;
      if (this.#inString) {
        if (this.#escaped) this.#escaped = false;
        else if (b === BACKSLASH) this.#escaped = true;
        else if (b === QUOTE) {
          this.#inString = false;
          if (this.#key !== undefined) {
            // Its escapes undone as the parser undoes them: the bytes are a string's, as sent.
            this.#lastKey = JSON.parse(`"${Buffer.from(this.#key).toString('utf8')}"`) as string;
            this.#key = undefined;
            continue;
          }
        }
        if (this.#key !== undefined) this.#key.push(b);
        continue;
      }
      if (isSpace(b)) continue;
      if (this.#inItems && this.#depth === 2) {
        if (b === COMMA || b === CLOSE_LIST) {
          if (this.#inItem) {
            this.#endItem(chunk, i);
            // The comma after an item is left out with it.
            restFrom = b === COMMA ? i + 1 : i;
          }
          if (b === COMMA) continue;
          this.#inItems = false;
        } else if (!this.#inItem) {
          this.#keepRest(chunk, restFrom, i);
          this.#inItem = true;
          this.#itemStart = i;
        }
      }
      if (this.#itemsNext && this.#depth === 1) {
        this.#itemsNext = false;
        if (b === OPEN_LIST) this.#inItems = true;
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
          if (this.#depth === 1) this.#itemsNext = this.#lastKey === 'items';
          break;
      }
    }
    if (this.#inItem) this.#itemParts.push(chunk.subarray(this.#itemStart));
    else this.#keepRest(chunk, restFrom, chunk.length);
  }

  #keepRest(chunk: Buffer, from: number, to: number): void {
    // A copy: a slice would keep the whole chunk.
    if (to > from) this.#rest.push(Buffer.from(chunk.subarray(from, to)));
  }

  #endItem(chunk: Buffer, end: number): void {
    let text: string;
    if (this.#itemParts.length === 0) {
      text = chunk.toString('utf8', this.#itemStart, end);
    } else {
      this.#itemParts.push(chunk.subarray(this.#itemStart, end));
      text = Buffer.concat(this.#itemParts).toString('utf8');
      this.#itemParts = [];
    }
    this.#inItem = false;
    this.#itemStart = -1;
    this.#onItem(text);
  }

  /** The list without its items (`"items": []`), once the answer has ended; an answer cut short leaves it unparseable. */
  end(): string {
    if (this.#inItem) this.#rest.push(...this.#itemParts);
    return Buffer.concat(this.#rest).toString('utf8');
  }
}

/**
 * Reads a list answer from its chunks: each item is parsed and handed to `onItem` in order, and
 * the list without its items is returned, parsed.
 */
export async function readJsonList(chunks: AsyncIterable<Buffer>, onItem: (item: unknown) => void): Promise<unknown> {
  const splitter = new JsonListSplitter((text) => onItem(JSON.parse(text)));
  for await (const chunk of chunks) splitter.write(chunk);
  return JSON.parse(splitter.end());
}
