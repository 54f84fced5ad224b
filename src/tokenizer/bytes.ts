// The byte tokenizer: ids are the UTF-8 bytes of the text (256 ids, no BOS/EOS).
import { errors } from '../errors.js';
import type { EncodeOptions, StreamDecoder, Tokenizer } from './types.js';

const encoder = new TextEncoder();

/** UTF-8 length of `text` (a lone surrogate counts 3 bytes, as U+FFFD). */
export function utf8ByteLength(text: string): number {
  return Buffer.byteLength(text, 'utf8');
}

/** Checks a decode input and returns its ids as numbers; throws E_INPUT on a
 *  non-integer or an id outside [0, vocabSize). */
export function checkIds(ids: ArrayLike<number>, vocabSize: number): void {
  if (ids === null || typeof ids !== 'object' || typeof ids.length !== 'number') {
    throw errors.input(`token ids must be an array of integers (got ${typeof ids})`);
  }
  for (let i = 0; i < ids.length; i++) checkId(ids[i]!, vocabSize, i);
}

export function checkId(id: number, vocabSize: number, at?: number): void {
  if (!Number.isInteger(id) || id < 0 || id >= vocabSize) {
    const where = at === undefined ? '' : ` at index ${at}`;
    throw errors.input(`token id ${String(id)}${where} is outside the vocabulary [0, ${vocabSize})`);
  }
}

export function checkText(text: unknown): asserts text is string {
  if (typeof text !== 'string') throw errors.input(`text to encode must be a string (got ${text === null ? 'null' : typeof text})`);
}

/** The byte LM's tokenizer: ids are the UTF-8 bytes of the text (256 ids, no BOS or EOS). */
export class ByteTokenizer implements Tokenizer {
  /** always 'bytes' */
  readonly kind = 'bytes' as const;
  /** 256 */
  readonly vocabSize = 256;
  /** none */
  readonly bosId = null;
  /** none */
  readonly eosId = null;

  encode(text: string, _opts?: EncodeOptions): Int32Array {
    checkText(text);
    return Int32Array.from(encoder.encode(text));
  }

  decode(ids: ArrayLike<number>): string {
    checkIds(ids, 256);
    return new TextDecoder().decode(Uint8Array.from(ids as ArrayLike<number>));
  }

  streamDecoder(context?: ArrayLike<number>): StreamDecoder {
    let dec = new TextDecoder();
    if (context !== undefined) {
      checkIds(context, 256);
      // an unfinished UTF-8 character at the context's end stays pending: the first bytes pushed finish it
      let from = context.length;
      while (from > 0 && context.length - from < 3 && (context[from - 1]! & 0xc0) === 0x80) from--;
      if (from > 0 && context[from - 1]! >= 0xc0) dec.decode(Uint8Array.from({ length: context.length - from + 1 }, (_, i) => context[from - 1 + i]!), { stream: true });
    }
    const one = new Uint8Array(1);
    return {
      push(id: number): string {
        checkId(id, 256);
        one[0] = id;
        return dec.decode(one, { stream: true });
      },
      flush(): string {
        const rest = dec.decode();
        dec = new TextDecoder();
        return rest;
      },
    };
  }

  byteLength(text: string): number {
    checkText(text);
    return utf8ByteLength(text);
  }
}
