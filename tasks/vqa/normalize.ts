/**
 * The answer processing of the official VQA evaluator (GT-Vision-Lab/VQA,
 * PythonEvaluationTools/vqaEvaluation/vqaEval.py), reproduced character for character,
 * including its quirks: the tests below each step say which quirk they keep.
 *
 * The evaluator is Python; where Python and JavaScript string handling differ we follow
 * Python 3 (what EvalAI and LAVIS run): `\d` means any Unicode decimal digit (category Nd),
 * whitespace is what `str.split()` / `str.strip()` treat as whitespace.
 */

/** The 21 characters the official `punct` list handles (quotes `'` and `:` are not among them). */
const PUNCTUATION = [';', '/', '[', ']', '"', '{', '}', '(', ')', '=', '+', '\\', '_', '-', '>', '<', '@', '`', ',', '?', '!'] as const;

/** `commaStrip = (\d)(\,)(\d)`: a digit-comma-digit anywhere makes every punctuation mark vanish. */
const DIGIT_COMMA_DIGIT = /\p{Nd},\p{Nd}/u;

/**
 * `periodStrip = (?!<=\d)(\.)(?!\d)`: the first group is a negative *lookahead* for the literal "<="
 * and a digit, which can never match before a ".", so only "a period not followed by a digit" remains.
 */
const PERIOD_NOT_BEFORE_DIGIT = /\.(?!\p{Nd})/gu;

/** `periodStrip.sub("", text, re.UNICODE)` passes re.UNICODE (32) as `count`: at most 32 periods go. */
const PERIOD_STRIP_COUNT = 32;

/** Characters for which Python's `str.isspace()` is true (JavaScript's `\s` differs: it has U+FEFF, lacks U+001C-U+001F and U+0085). */
const PYTHON_WHITESPACE = '\\t\\n\\x0b\\x0c\\r\\x1c-\\x1f \\x85\\xa0\\u1680\\u2000-\\u200a\\u2028\\u2029\\u202f\\u205f\\u3000';
const PYTHON_SPLIT = new RegExp(`[${PYTHON_WHITESPACE}]+`);
const PYTHON_STRIP = new RegExp(`^[${PYTHON_WHITESPACE}]+|[${PYTHON_WHITESPACE}]+$`, 'g');

const NUMBER_WORDS: ReadonlyMap<string, string> = new Map([
  ['none', '0'], ['zero', '0'], ['one', '1'], ['two', '2'], ['three', '3'], ['four', '4'],
  ['five', '5'], ['six', '6'], ['seven', '7'], ['eight', '8'], ['nine', '9'], ['ten', '10'],
]);

const ARTICLES: ReadonlySet<string> = new Set(['a', 'an', 'the']);

/**
 * The official contractions table, as written (keys with capitals such as "Im" are kept
 * although they can never match a lowercased word, and "somebody'd" really maps to "somebodyd").
 */
const CONTRACTIONS: ReadonlyMap<string, string> = new Map(Object.entries({
  aint: "ain't", arent: "aren't", cant: "can't", couldve: "could've", couldnt: "couldn't",
  "couldn'tve": "couldn't've", "couldnt've": "couldn't've", didnt: "didn't", doesnt: "doesn't", dont: "don't", hadnt: "hadn't",
  "hadnt've": "hadn't've", "hadn'tve": "hadn't've", hasnt: "hasn't", havent: "haven't", hed: "he'd", "hed've": "he'd've",
  "he'dve": "he'd've", hes: "he's", howd: "how'd", howll: "how'll", hows: "how's", "Id've": "I'd've", "I'dve": "I'd've",
  Im: "I'm", Ive: "I've", isnt: "isn't", itd: "it'd", "itd've": "it'd've", "it'dve": "it'd've", itll: "it'll", "let's": "let's",
  maam: "ma'am", mightnt: "mightn't", "mightnt've": "mightn't've", "mightn'tve": "mightn't've", mightve: "might've",
  mustnt: "mustn't", mustve: "must've", neednt: "needn't", notve: "not've", oclock: "o'clock", oughtnt: "oughtn't",
  "ow's'at": "'ow's'at", "'ows'at": "'ow's'at", "'ow'sat": "'ow's'at", shant: "shan't", "shed've": "she'd've", "she'dve": "she'd've",
  "she's": "she's", shouldve: "should've", shouldnt: "shouldn't", "shouldnt've": "shouldn't've", "shouldn'tve": "shouldn't've",
  "somebody'd": 'somebodyd', "somebodyd've": "somebody'd've", "somebody'dve": "somebody'd've", somebodyll: "somebody'll",
  somebodys: "somebody's", someoned: "someone'd", "someoned've": "someone'd've", "someone'dve": "someone'd've",
  someonell: "someone'll", someones: "someone's", somethingd: "something'd", "somethingd've": "something'd've",
  "something'dve": "something'd've", somethingll: "something'll", thats: "that's", thered: "there'd", "thered've": "there'd've",
  "there'dve": "there'd've", therere: "there're", theres: "there's", theyd: "they'd", "theyd've": "they'd've",
  "they'dve": "they'd've", theyll: "they'll", theyre: "they're", theyve: "they've", twas: "'twas", wasnt: "wasn't",
  "wed've": "we'd've", "we'dve": "we'd've", weve: "we've", werent: "weren't", whatll: "what'll", whatre: "what're",
  whats: "what's", whatve: "what've", whens: "when's", whered: "where'd", wheres: "where's", whereve: "where've",
  whod: "who'd", "whod've": "who'd've", "who'dve": "who'd've", wholl: "who'll", whos: "who's", whove: "who've", whyll: "why'll",
  whyre: "why're", whys: "why's", wont: "won't", wouldve: "would've", wouldnt: "wouldn't", "wouldnt've": "wouldn't've",
  "wouldn'tve": "wouldn't've", yall: "y'all", "yall'll": "y'all'll", "y'allll": "y'all'll", "yall'd've": "y'all'd've",
  "y'alld've": "y'all'd've", "y'all'dve": "y'all'd've", youd: "you'd", "youd've": "you'd've", "you'dve": "you'd've",
  youll: "you'll", youre: "you're", youve: "you've",
}));

/** `processPunctuation`: every decision looks at the original text, the replacements apply to the running output. */
export function processPunctuation(text: string): string {
  const dropAll = DIGIT_COMMA_DIGIT.test(text);
  let out = text;
  for (const mark of PUNCTUATION) {
    if (!out.includes(mark)) continue;
    const drop = dropAll || text.includes(mark + ' ') || text.includes(' ' + mark);
    out = out.replaceAll(mark, drop ? '' : ' ');
  }
  if (!out.includes('.')) return out;
  let removed = 0;
  return out.replace(PERIOD_NOT_BEFORE_DIGIT, (period) => (removed++ < PERIOD_STRIP_COUNT ? '' : period));
}

/** `processDigitArticle`: lowercase, number words to digits, drop articles, then contractions. */
export function processDigitArticle(text: string): string {
  const words: string[] = [];
  for (const word of text.toLowerCase().split(PYTHON_SPLIT)) {
    if (word === '') continue; // Python's split() never yields empty words
    const mapped = NUMBER_WORDS.get(word) ?? word;
    if (!ARTICLES.has(mapped)) words.push(CONTRACTIONS.get(mapped) ?? mapped);
  }
  return words.join(' ');
}

/** `text.replace('\n', ' ').replace('\t', ' ').strip()`, applied before anything else. */
export function cleanWhitespace(text: string): string {
  return text.replaceAll('\n', ' ').replaceAll('\t', ' ').replace(PYTHON_STRIP, '');
}

/**
 * The full official answer processing (whitespace, punctuation, digits and articles): what the
 * evaluator applies to an answer and to a prediction when a question's answers disagree. Training
 * uses it to build the answer vocabulary and the soft targets.
 */
export function normalizeVqaAnswer(text: string): string {
  return processDigitArticle(processPunctuation(cleanWhitespace(text)));
}
