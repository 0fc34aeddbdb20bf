import test from 'ava';
import { SeededRandom } from '../../core/random.ts';
import { checkUtf8, decodeUtf8, firstInvalidUtf8Offset } from '../../core/utf8.ts';

test('the offset finder agrees with a fatal TextDecoder on random bytes and on every prefix of valid text', (t) => {
  const rng = new SeededRandom(11).fork('utf8');
  const fatal = new TextDecoder('utf-8', { fatal: true });
  const valid = (bytes: Uint8Array) => {
    try {
      fatal.decode(bytes);
      return true;
    } catch {
      return false;
    }
  };
  // Mostly the bytes that make sequences (leads, continuations, the edges of table 3-7), some ASCII.
  const alphabet = [0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0, 0xbf, 0xc0, 0xc1, 0xc2, 0xdf, 0xe0, 0xe1, 0xec, 0xed, 0xee, 0xef, 0xf0, 0xf1, 0xf3, 0xf4, 0xf5, 0xff];
  for (let round = 0; round < 20_000; round++) {
    const bytes = Uint8Array.from({ length: rng.int(1, 6) }, () => alphabet[rng.int(0, alphabet.length - 1)]);
    const offset = firstInvalidUtf8Offset(bytes);
    t.is(offset === -1, valid(bytes), Buffer.from(bytes).toString('hex'));
    // Everything before the offset is valid text that a fatal decoder reads.
    if (offset > 0) t.true(valid(bytes.subarray(0, offset)), Buffer.from(bytes).toString('hex'));
  }
  const text = Buffer.from('a café, 日本 and 😀');
  for (let end = 0; end <= text.length; end++) t.is(firstInvalidUtf8Offset(text.subarray(0, end)) === -1, valid(text.subarray(0, end)));
});

test('checkUtf8 names the file and the byte offset; decodeUtf8 skips a byte order mark', (t) => {
  const bytes = Buffer.concat([Buffer.from('ok\nnaïve\n'), Buffer.from([0xe9]), Buffer.from('t\u00e9\n')]);
  t.throws(() => checkUtf8(bytes, { file: 'texts.txt' }), { message: 'texts.txt: not UTF-8: invalid byte sequence at byte offset 10 (0xe9 0x74 0xc3 0xa9); text files must be UTF-8' });
  t.is(decodeUtf8(Buffer.from('\ufeffnaïve'), { file: 'x' }), 'naïve');
});
