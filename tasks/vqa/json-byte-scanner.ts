/**
 * A JSON scanner over a file's bytes that reads only the values its caller asks for and checks the
 * grammar of everything else without building it.
 *
 * Why hand-written: the VQA v2 annotations (165 MB for val2014) cost JSON.parse and the garbage
 * collector of its object tree about five times what scoring them costs, and no JavaScript
 * library reads JSON faster than JSON.parse (streaming parsers such as stream-json or
 * @streamparser/json are several times slower; simdjson bindings are native add-ons that do not
 * install offline). Reading only the fields scoring needs, and interning the strings that repeat,
 * is what makes loading cheap.
 *
 * It is a fast path, never the authority: anything it does not expect (a syntax error, an
 * escape in a key it cannot place, a number it would have to round, nesting it cannot follow)
 * throws {@link NOT_HANDLED}, and the caller parses the file with JSON.parse and its strict
 * validation instead, so a malformed file gets the same precise error as before. Strings are
 * decoded exactly as JSON.parse decodes them: bytes without escapes as UTF-8 (a `"` byte never
 * belongs to a multi-byte sequence, so decoding one string's bytes gives what decoding the whole
 * file gives), strings with escapes by JSON.parse itself. Bytes that are not UTF-8 are not
 * handled: the strict path refuses the file, naming the offset.
 */

import { isUtf8 } from 'node:buffer';

/** Thrown (one preallocated instance, no stack to capture) when the bytes are not what the fast path reads. */
export const NOT_HANDLED: Error = new Error('not handled by the byte scanner: parse with JSON.parse');

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const COMMA = 0x2c;
const COLON = 0x3a;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;
const MINUS = 0x2d;
const PLUS = 0x2b;
const DOT = 0x2e;
const DIGIT_0 = 0x30;
const DIGIT_9 = 0x39;

/** The most digits an id may have here: up to 15 decimal digits every value is an exact integer. */
const MAX_ID_DIGITS = 15;

function isJsonWhitespace(byte: number): boolean {
  return byte === 0x20 || byte === 0x0a || byte === 0x0d || byte === 0x09;
}

function isDigit(byte: number): boolean {
  return byte >= DIGIT_0 && byte <= DIGIT_9;
}

function isHexDigit(byte: number): boolean {
  return isDigit(byte) || (byte >= 0x41 && byte <= 0x46) || (byte >= 0x61 && byte <= 0x66);
}

/**
 * The keys a caller looks for in one kind of object, as bytes, to match keys without decoding them.
 * Files write their keys in one order, record after record, so it remembers which key followed
 * which and tries that one first: one comparison of the key's bytes instead of a search.
 */
export class JsonKeys {
  readonly names: readonly string[];
  readonly encoded: readonly Uint8Array[];
  /** following[previous + 1]: the key seen last time after key `previous` (-1: at the object's start). */
  readonly following: Int32Array;
  /** Each name's bytes as little-endian 32-bit words (its last length % 4 bytes are compared one by one). */
  private readonly nameWords: readonly Int32Array[];
  constructor(names: readonly string[]) {
    this.names = names;
    this.encoded = names.map((name) => Buffer.from(name, 'utf8'));
    this.following = new Int32Array(names.length + 1).fill(-1);
    this.nameWords = this.encoded.map((name) => {
      const view = new DataView(name.buffer, name.byteOffset, name.length);
      return Int32Array.from({ length: name.length >> 2 }, (_, word) => view.getInt32(word * 4, true));
    });
  }
  /** Whether `bytes` spell name `index` from `start` (what follows is the caller's to check). */
  spelledAt(words: DataView, bytes: Uint8Array, start: number, index: number): boolean {
    const nameWords = this.nameWords[index];
    for (let word = 0; word < nameWords.length; word++) if (words.getInt32(start + word * 4, true) !== nameWords[word]) return false;
    const name = this.encoded[index];
    for (let offset = nameWords.length * 4; offset < name.length; offset++) if (bytes[start + offset] !== name[offset]) return false;
    return true;
  }
  /** The index of the key spelled by `bytes[start, end)` (no escapes), or -1. */
  indexOfBytes(bytes: Uint8Array, start: number, end: number): number {
    const length = end - start;
    for (let index = 0; index < this.encoded.length; index++) {
      const name = this.encoded[index];
      if (name.length !== length) continue;
      let same = true;
      for (let offset = 0; offset < length; offset++) {
        if (bytes[start + offset] !== name[offset]) {
          same = false;
          break;
        }
      }
      if (same) return index;
    }
    return -1;
  }
}

/**
 * The member loop of one kind of object, shared by every object the scanners read: it reads each
 * key, skips the values of keys not in `keys`, and refuses a key seen twice (JSON.parse keeps the
 * last one; the strict path decides what that means). One instance is reused object after object,
 * so that reading an object allocates nothing.
 *
 *   for (let more = members.open(scanner); more; more = scanner.nextMember()) {
 *     const key = members.readKey(scanner);
 *     if (key >= 0) read key's value;
 *   }
 *   if (!members.sawAll()) throw NOT_HANDLED;
 */
export class JsonObjectMembers {
  readonly keys: JsonKeys;
  /** A bit per key of `keys` read in the current object. */
  private seen = 0;
  private previous = -1;
  private readonly allKeys: number;

  constructor(keys: JsonKeys) {
    this.keys = keys;
    this.allKeys = (1 << keys.names.length) - 1;
  }

  /** Consumes the object's `{` (after optional whitespace); true when a member follows. */
  open(scanner: JsonByteScanner): boolean {
    scanner.expect(OPEN_BRACE);
    this.seen = 0;
    this.previous = -1;
    return scanner.firstMember();
  }

  /**
   * Reads a member's key and its colon: the key's index in `keys`, with the cursor on its value,
   * or -1 for another key, whose value it has skipped.
   */
  readKey(scanner: JsonByteScanner): number {
    const key = scanner.readKey(this.keys, this.previous);
    this.previous = key;
    if (key < 0) {
      scanner.skipValue();
      return -1;
    }
    const bit = 1 << key;
    if (this.seen & bit) throw NOT_HANDLED;
    this.seen |= bit;
    return key;
  }

  /** Whether every key of `keys` was read in this object. */
  sawAll(): boolean {
    return this.seen === this.allKeys;
  }

  /** Whether the keys `first`..`first + count - 1` were all read in this object. */
  saw(first: number, count: number): boolean {
    const wanted = ((1 << count) - 1) << first;
    return (this.seen & wanted) === wanted;
  }
}

/**
 * Gives one string object for each distinct byte sequence of a file's strings: VQA answers,
 * answer types and question types repeat a great deal, so each is decoded once and the records
 * share it. Keyed by the raw bytes between the quotes (equal bytes decode to equal strings),
 * copied into a small arena of their own: comparing with the first occurrence in a 165 MB file
 * would miss the cache on almost every lookup.
 */
export class InternedStrings {
  private slots = new Int32Array(1 << 12).fill(-1);
  private arena = new Uint8Array(1 << 16);
  private arenaUsed = 0;
  private offsets: Int32Array = new Int32Array(1 << 11);
  private lengths: Int32Array = new Int32Array(1 << 11);
  private hashes: Int32Array = new Int32Array(1 << 11);
  private readonly strings: string[] = [];

  /** The string for `bytes[start, end)`, whose hash is `hash`; `decode` makes it the first time. */
  lookup(bytes: Uint8Array, start: number, end: number, hash: number, decode: () => string): string {
    const length = end - start;
    const arena = this.arena;
    const mask = this.slots.length - 1;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const entry = this.slots[slot];
      if (entry < 0) {
        this.slots[slot] = this.add(bytes, start, length, hash, decode());
        return this.strings[this.strings.length - 1];
      }
      if (this.hashes[entry] !== hash || this.lengths[entry] !== length) continue;
      const offset = this.offsets[entry];
      let same = true;
      for (let index = 0; index < length; index++) {
        if (bytes[start + index] !== arena[offset + index]) {
          same = false;
          break;
        }
      }
      if (same) return this.strings[entry];
    }
  }

  private add(bytes: Uint8Array, start: number, length: number, hash: number, text: string): number {
    const entry = this.strings.length;
    if (entry === this.hashes.length) {
      this.offsets = grown(this.offsets, entry * 2);
      this.lengths = grown(this.lengths, entry * 2);
      this.hashes = grown(this.hashes, entry * 2);
    }
    if (this.arenaUsed + length > this.arena.length) {
      const arena = new Uint8Array(Math.max(this.arena.length * 2, this.arenaUsed + length));
      arena.set(this.arena.subarray(0, this.arenaUsed));
      this.arena = arena;
    }
    this.arena.set(bytes.subarray(start, start + length), this.arenaUsed);
    this.offsets[entry] = this.arenaUsed;
    this.lengths[entry] = length;
    this.hashes[entry] = hash;
    this.arenaUsed += length;
    this.strings.push(text);
    if (this.strings.length * 2 > this.slots.length) this.rehash();
    return entry;
  }

  private rehash(): void {
    const slots = new Int32Array(this.slots.length * 2).fill(-1);
    const mask = slots.length - 1;
    for (let entry = 0; entry < this.strings.length; entry++) {
      let slot = this.hashes[entry] & mask;
      while (slots[slot] >= 0) slot = (slot + 1) & mask;
      slots[slot] = entry;
    }
    this.slots = slots;
  }
}

function grown(array: Int32Array, length: number): Int32Array {
  const larger = new Int32Array(length);
  larger.set(array);
  return larger;
}

/**
 * A cursor over JSON bytes. Methods that read a value expect the cursor on its first byte (after
 * whitespace, which {@link peek} skips) and leave it just after the value.
 */
export class JsonByteScanner {
  readonly bytes: Buffer;
  /** The same bytes, read four at a time to compare keys. */
  private readonly words: DataView;
  position: number;
  /** Where the last string scanned by {@link scanString} starts and ends (between its quotes). */
  private stringStart = 0;
  private stringEnd = 0;
  private stringHash = 0;
  private stringHasEscape = false;
  private stringIsAscii = true;
  private readonly decodeLastString = (): string => this.decodeString();

  constructor(bytes: Buffer) {
    this.bytes = bytes;
    this.words = new DataView(bytes.buffer, bytes.byteOffset, bytes.length);
    // A UTF-8 byte order mark is skipped, as the strict path skips it.
    this.position = bytes[0] === 0xef && bytes[1] === 0xbb && bytes[2] === 0xbf ? 3 : 0;
  }

  /** Skips whitespace and returns the next byte without consuming it (-1 at the end). */
  peek(): number {
    const bytes = this.bytes;
    let position = this.position;
    // Most files have no whitespace, or one space, between tokens: no loop for those.
    const first = bytes[position];
    if (first > 0x20) return first;
    while (position < bytes.length && isJsonWhitespace(bytes[position])) position++;
    this.position = position;
    return position < bytes.length ? bytes[position] : -1;
  }

  /** Consumes `byte` after optional whitespace. */
  expect(byte: number): void {
    if (this.bytes[this.position] === byte) {
      this.position++;
      return;
    }
    if (this.peek() !== byte) throw NOT_HANDLED;
    this.position++;
  }

  /** Whitespace only may follow the top-level value. */
  expectEnd(): void {
    if (this.peek() !== -1) throw NOT_HANDLED;
  }

  /** After `{`: true when a member follows (the cursor is then on its key), false when the object closes. */
  firstMember(): boolean {
    if (this.bytes[this.position] === QUOTE) return true;
    const next = this.peek();
    if (next === CLOSE_BRACE) {
      this.position++;
      return false;
    }
    if (next !== QUOTE) throw NOT_HANDLED;
    return true;
  }

  /** After a member's value: true when another member follows, false when the object closes. */
  nextMember(): boolean {
    const bytes = this.bytes;
    const position = this.position;
    if (bytes[position] === COMMA && bytes[position + 1] === QUOTE) {
      this.position = position + 1;
      return true;
    }
    const next = this.peek();
    if (next === CLOSE_BRACE) {
      this.position++;
      return false;
    }
    if (next !== COMMA) throw NOT_HANDLED;
    this.position++;
    if (this.peek() !== QUOTE) throw NOT_HANDLED;
    return true;
  }

  /** After `[`: true when an element follows, false when the array closes. */
  firstElement(): boolean {
    if (this.peek() === CLOSE_BRACKET) {
      this.position++;
      return false;
    }
    return true;
  }

  /** After an element: true when another follows, false when the array closes. */
  nextElement(): boolean {
    if (this.bytes[this.position] === COMMA) {
      this.position++;
      return true;
    }
    const next = this.peek();
    if (next === CLOSE_BRACKET) {
      this.position++;
      return false;
    }
    if (next !== COMMA) throw NOT_HANDLED;
    this.position++;
    return true;
  }

  /**
   * Reads a member's key and its colon; returns the key's index in `keys`, or -1 for any other
   * key. `previous` is the index of the object's previous key (-1 for its first).
   */
  readKey(keys: JsonKeys, previous: number): number {
    const bytes = this.bytes;
    const start = this.position + 1;
    const slot = previous + 1;
    const guess = keys.following[slot];
    if (guess >= 0) {
      // The key's bytes equal the name's and a quote follows: it is that key, with no escapes.
      const length = keys.encoded[guess].length;
      if (keys.spelledAt(this.words, bytes, start, guess) && bytes[start + length] === QUOTE) {
        const after = start + length + 1;
        if (bytes[after] === COLON) {
          this.position = after + 1;
        } else {
          this.position = after;
          this.expect(COLON);
        }
        return guess;
      }
    }
    this.scanString();
    const index = this.stringHasEscape ? keys.names.indexOf(this.decodeString()) : keys.indexOfBytes(bytes, this.stringStart, this.stringEnd);
    if (index >= 0) keys.following[slot] = index;
    this.expect(COLON);
    return index;
  }

  /** Reads a string value (the cursor may be on whitespace before it); anything else is not handled. */
  readString(): string {
    if (this.peek() !== QUOTE) throw NOT_HANDLED;
    this.scanString();
    return this.decodeString();
  }

  /** Reads a string value, giving the same string object for the same bytes. */
  readInternedString(strings: InternedStrings): string {
    if (this.bytes[this.position] !== QUOTE && this.peek() !== QUOTE) throw NOT_HANDLED;
    this.scanString();
    return strings.lookup(this.bytes, this.stringStart, this.stringEnd, this.stringHash, this.decodeLastString);
  }

  /** Checks that the value is a string, without decoding it. */
  skipString(): void {
    if (this.bytes[this.position] !== QUOTE && this.peek() !== QUOTE) throw NOT_HANDLED;
    this.scanString();
  }

  /**
   * Reads a number written as plain decimal digits (`0` or `[1-9][0-9]*`, at most 15 digits).
   * Other spellings JSON allows for an integer (`7.0`, `7e0`, `-7`) are left to the strict path.
   */
  readPlainNonNegativeInteger(): number {
    const bytes = this.bytes;
    let position = this.position;
    while (position < bytes.length && isJsonWhitespace(bytes[position])) position++;
    const start = position;
    let value = 0;
    while (position < bytes.length) {
      const byte = bytes[position];
      if (!isDigit(byte)) break;
      value = value * 10 + (byte - DIGIT_0);
      position++;
    }
    const digits = position - start;
    if (digits === 0 || digits > MAX_ID_DIGITS || (digits > 1 && bytes[start] === DIGIT_0)) throw NOT_HANDLED;
    if (position < bytes.length) {
      const next = bytes[position];
      if (next === DOT || next === 0x65 || next === 0x45) throw NOT_HANDLED;
    }
    this.position = position;
    return value;
  }

  /** Checks one value of any kind, nested ones included, and moves past it. */
  skipValue(): void {
    const next = this.peek();
    if (next === QUOTE) {
      this.scanString();
    } else if (next === OPEN_BRACE) {
      this.position++;
      for (let more = this.firstMember(); more; more = this.nextMember()) {
        this.scanString();
        this.expect(COLON);
        this.skipValue();
      }
    } else if (next === OPEN_BRACKET) {
      this.position++;
      for (let more = this.firstElement(); more; more = this.nextElement()) this.skipValue();
    } else if (next === MINUS || isDigit(next)) {
      this.skipNumber();
    } else if (next === 0x74) {
      this.skipLiteral('true');
    } else if (next === 0x66) {
      this.skipLiteral('false');
    } else if (next === 0x6e) {
      this.skipLiteral('null');
    } else {
      throw NOT_HANDLED;
    }
  }

  /** `-?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?`, the JSON number grammar. */
  private skipNumber(): void {
    const bytes = this.bytes;
    let position = this.position;
    if (bytes[position] === MINUS) position++;
    if (bytes[position] === DIGIT_0) position++;
    else if (isDigit(bytes[position])) while (isDigit(bytes[position])) position++;
    else throw NOT_HANDLED;
    if (bytes[position] === DOT) {
      position++;
      if (!isDigit(bytes[position])) throw NOT_HANDLED;
      while (isDigit(bytes[position])) position++;
    }
    if (bytes[position] === 0x65 || bytes[position] === 0x45) {
      position++;
      if (bytes[position] === PLUS || bytes[position] === MINUS) position++;
      if (!isDigit(bytes[position])) throw NOT_HANDLED;
      while (isDigit(bytes[position])) position++;
    }
    this.position = position;
  }

  private skipLiteral(literal: string): void {
    for (let offset = 0; offset < literal.length; offset++) {
      if (this.bytes[this.position + offset] !== literal.charCodeAt(offset)) throw NOT_HANDLED;
    }
    this.position += literal.length;
  }

  /**
   * Moves past the string whose opening quote is at the cursor, checking it as JSON does (no raw
   * control characters, valid escapes), and records where it lies, a hash of its bytes, and
   * whether it has escapes or bytes outside ASCII.
   */
  private scanString(): void {
    const bytes = this.bytes;
    const length = bytes.length;
    let position = this.position + 1;
    const start = position;
    // FNV-1a over the raw bytes, for the interning table.
    let hash = 0x811c9dc5 | 0;
    let hasEscape = false;
    let seen = 0;
    for (;;) {
      if (position >= length) throw NOT_HANDLED;
      const byte = bytes[position];
      if (byte === QUOTE) break;
      if (byte < 0x20) throw NOT_HANDLED;
      hash = Math.imul(hash ^ byte, 0x01000193);
      seen |= byte;
      position++;
      if (byte === BACKSLASH) {
        hasEscape = true;
        const escaped = bytes[position];
        if (escaped === 0x75) {
          for (let digit = 1; digit <= 4; digit++) if (!isHexDigit(bytes[position + digit])) throw NOT_HANDLED;
        } else if (
          escaped !== QUOTE && escaped !== BACKSLASH && escaped !== 0x2f && escaped !== 0x62 && escaped !== 0x66 && escaped !== 0x6e && escaped !== 0x72 && escaped !== 0x74
        ) {
          throw NOT_HANDLED;
        }
        // The escaped byte (and \u's digits, checked above) join the hash as ordinary bytes.
        hash = Math.imul(hash ^ escaped, 0x01000193);
        position++;
      }
    }
    // Bytes outside ASCII must be UTF-8: JSON.parse would read invalid ones as U+FFFD, so such a
    // file is left to the strict path, which refuses it naming the byte offset (core/utf8.ts).
    // Skipped strings too: a text file is UTF-8 as a whole or not at all.
    if (seen >= 0x80 && !isUtf8(bytes.subarray(start, position))) throw NOT_HANDLED;
    this.stringStart = start;
    this.stringEnd = position;
    this.stringHash = hash;
    this.stringHasEscape = hasEscape;
    this.stringIsAscii = seen < 0x80;
    this.position = position + 1;
  }

  private decodeString(): string {
    const { bytes, stringStart: start, stringEnd: end } = this;
    if (this.stringHasEscape) {
      // JSON.parse of the quoted bytes: every escape, \uXXXX surrogate pairs and lone surrogates
      // included, decodes exactly as it does when the whole file is parsed.
      try {
        return JSON.parse(bytes.toString('utf8', start - 1, end + 1)) as string;
      } catch {
        throw NOT_HANDLED;
      }
    }
    return bytes.toString(this.stringIsAscii ? 'latin1' : 'utf8', start, end);
  }
}
