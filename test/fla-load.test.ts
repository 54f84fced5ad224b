// Loading fla-family model folders: where they come from (a folder, ORG/NAME in the local
// Hugging Face cache), what is refused (each unsupported config key, another model_type, a
// missing shard, a tensor of the wrong shape — one clear error each, exit 2 on the CLI), and
// text in and out through a real tokenizer (Mistral's 32k, rebuilt from mistral-tokenizer-js)
// on a small random model: score, logits, generate, stream, and the CLI's score/generate/info.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { RetNetLM } from '../src/index.js';
import { resolveModelDir } from '../src/model/fla.js';
import { readSafetensors, writeSafetensors } from '../src/safetensors.js';
import { score } from '../src/cli/commands/score.js';
import { generate } from '../src/cli/commands/generate.js';
import { main } from '../src/cli/main.js';
import type { Command, CommandIO } from '../src/cli/lm-util.js';
import { FIXTURES } from './helpers.js';
import { makeTinyFlaFolder } from './helpers/fla-folder.js';
import { CHAR_TOKENIZER_VOCAB, charTokenizerJson } from './helpers/char-tokenizer.js';

const tmp = mkdtempSync(join(tmpdir(), 'retnet-fla-load-'));
const fixture = (name: string) => join(FIXTURES, 'fla', name);
const copy = (name: string, as: string) => { const d = join(tmp, as); cpSync(fixture(name), d, { recursive: true }); return d; };
const editConfig = (dir: string, edit: (c: Record<string, unknown>) => void) => {
  const p = join(dir, 'config.json');
  const c = JSON.parse(readFileSync(p, 'utf8'));
  edit(c);
  writeFileSync(p, JSON.stringify(c));
};

async function refusal(dir: string): Promise<{ code: string; message: string }> {
  try { await (await RetNetLM.load(dir)).close(); } catch (e) { return { code: (e as { code: string }).code, message: (e as Error).message }; }
  throw new Error(`${dir}: loaded, expected a refusal`);
}

/** `retnet info DIR` and `retnet score --model DIR FILE` through main(): both exit 2 with the message. */
async function cliExit(dir: string): Promise<{ codes: number[]; err: string }> {
  const errs: string[] = [];
  const orig = process.stderr.write.bind(process.stderr);
  const file = join(tmp, 'text.txt');
  writeFileSync(file, 'hello');
  (process.stderr as { write: unknown }).write = (s: string) => { errs.push(String(s)); return true; };
  const origLog = console.log; console.log = () => {};
  try {
    const codes = [await main(['info', dir]), await main(['score', '--model', dir, file])];
    return { codes, err: errs.join('') };
  } finally { (process.stderr as { write: unknown }).write = orig; console.log = origLog; }
}

test('refused config keys (hidden_act other than swish among them): each one named, E_CONFIG, and exit 2 on the CLI (info, score)', async () => {
  const cases: [string, (c: Record<string, unknown>) => void][] = [
    ['feature_map', (c) => { c.feature_map = 'relu'; }],
    ['use_short_conv', (c) => { c.use_short_conv = true; }],
    ['attn', (c) => { c.attn = { layers: [1], num_heads: 4 }; }],
    ['attnres_block_size', (c) => { c.attnres_block_size = 4; }],
    ['model_type', (c) => { c.model_type = 'llama'; }],
    ['use_output_gate', (c) => { c.use_output_gate = false; }],
    ['num_kv_heads', (c) => { c.num_kv_heads = 3; }],
    ['hidden_act', (c) => { c.hidden_act = 'gelu'; }], // fla's GatedMLP refuses it (before: loaded as gelu(gate)·up)
  ];
  for (const [key, edit] of cases) {
    const dir = copy('f32', `cfg-${key}`);
    editConfig(dir, edit);
    const r = await refusal(dir);
    assert.is(r.code, 'E_CONFIG', key);
    assert.ok(r.message.includes(`"${key}"`), `${key}: ${r.message}`);
    const c = await cliExit(dir);
    assert.equal(c.codes, [2, 2], `${key}: exit codes ${c.codes}; ${c.err}`);
    assert.ok(c.err.includes(`"${key}"`) && !/\n\s+at /.test(c.err), `${key}: ${c.err}`);
  }
});

test('a missing shard, a wrong shape, a missing tensor, an unexpected tensor and weights that overflow float32 are refused by name (E_WEIGHTS, exit 2)', async () => {
  const shard = copy('bf16-sharded', 'no-shard');
  const index = JSON.parse(readFileSync(join(shard, 'model.safetensors.index.json'), 'utf8')) as { weight_map: Record<string, string> };
  const victim = Object.values(index.weight_map)[0];
  rmSync(join(shard, victim));
  let r = await refusal(shard);
  assert.is(r.code, 'E_WEIGHTS');
  assert.match(r.message, new RegExp(`missing shard.*${victim.replace(/\./g, '\\.')}`));

  // one shard copied over another: a tensor in two files and the index's tensors of the lost shard in none
  // (before, info counted the copy's tensors twice and printed the folder as a whole model)
  const dup = copy('bf16-sharded', 'dup-shard');
  const shards = [...new Set(Object.values(index.weight_map))].sort();
  copyFileSync(join(dup, shards[2]), join(dup, shards[1]));
  r = await refusal(dup);
  assert.is(r.code, 'E_WEIGHTS');
  assert.match(r.message, /is in two files/);
  const dupExit = await cliExit(dup);
  assert.equal(dupExit.codes, [2, 2], `${dupExit.codes} ${dupExit.err}`);
  assert.match(dupExit.err, /is in two files/);

  const st = readSafetensors(join(fixture('f32'), 'model.safetensors')).tensors;
  const write = (as: string, edit: (t: Record<string, { shape: number[]; data: Float32Array }>) => void) => {
    const dir = copy('f32', as);
    const t: Record<string, { shape: number[]; data: Float32Array }> = {};
    for (const [n, v] of st) t[n] = { shape: [...v.shape], data: v.data as Float32Array };
    edit(t);
    writeSafetensors(join(dir, 'model.safetensors'), t);
    return dir;
  };
  const shape = write('shape', (t) => { const v = t['model.layers.1.attn.o_proj.weight']; t['model.layers.1.attn.o_proj.weight'] = { shape: [v.shape[1], v.shape[0]], data: v.data }; });
  r = await refusal(shape);
  assert.is(r.code, 'E_WEIGHTS');
  assert.match(r.message, /model\.layers\.1\.attn\.o_proj\.weight has shape \[128, 64\], expected \[64, 128\]/);
  const missing = write('missing', (t) => { delete t['model.layers.1.mlp.up_proj.weight']; });
  r = await refusal(missing);
  assert.match(r.message, /missing weight model\.layers\.1\.mlp\.up_proj\.weight/);
  const extra = write('extra', (t) => { t['model.layers.0.attn.q_conv1d.weight'] = { shape: [4], data: new Float32Array(4) }; });
  r = await refusal(extra);
  assert.match(r.message, /unexpected weights not used by the model: model\.layers\.0\.attn\.q_conv1d\.weight/);
  // finite weights that overflow float32: an mlp_norm gain of 1e20 bounds gate and up by 64·(8·1e20)·max|W|,
  // and down's input (swish(gate)·up) by the square of that: beyond 3.4e38 through down_proj
  const overflow = write('overflow', (t) => { t['model.layers.1.mlp_norm.weight'].data = Float32Array.from(t['model.layers.1.mlp_norm.weight'].data, (v, i) => (i === 3 ? 1e20 : v)); });
  r = await refusal(overflow);
  assert.is(r.code, 'E_WEIGHTS');
  assert.match(r.message, /weight model\.layers\.1\.mlp\.down_proj\.weight has max \|value\| .* can overflow float32 arithmetic/);
  for (const dir of [shard, shape, missing, extra]) {
    const c = await cliExit(dir);
    assert.equal(c.codes, [dir === shard ? 2 : 0, 2], `${dir}: ${c.codes} ${c.err}`); // info reads headers only: a bad shape is not its business
  }
});

test('ORG/NAME resolves to the snapshot in the local Hugging Face cache (refs/main), never downloads', () => {
  const cache = join(tmp, 'hub');
  const snap = join(cache, 'models--fla-hub--tiny', 'snapshots', 'abc123');
  mkdirSync(join(cache, 'models--fla-hub--tiny', 'refs'), { recursive: true });
  cpSync(fixture('f32'), snap, { recursive: true });
  writeFileSync(join(cache, 'models--fla-hub--tiny', 'refs', 'main'), 'abc123\n');
  assert.is(resolveModelDir('fla-hub/tiny', { HF_HUB_CACHE: cache }), snap);
  assert.is(resolveModelDir('fla-hub/tiny', { HF_HOME: tmp }), snap); // HF_HOME/hub
  // where huggingface_hub also puts it (before: only the two above were read, so these said "not in the cache")
  assert.is(resolveModelDir('fla-hub/tiny', { HUGGINGFACE_HUB_CACHE: cache }), snap);
  const xdg = join(tmp, 'xdg');
  cpSync(cache, join(xdg, 'huggingface', 'hub'), { recursive: true });
  assert.is(resolveModelDir('fla-hub/tiny', { XDG_CACHE_HOME: xdg }), join(xdg, 'huggingface', 'hub', 'models--fla-hub--tiny', 'snapshots', 'abc123'));
  assert.is(resolveModelDir('fla-hub/tiny', { HF_HUB_CACHE: cache, XDG_CACHE_HOME: join(tmp, 'nowhere') }), snap);
  try { resolveModelDir('fla-hub/absent', { HF_HUB_CACHE: cache }); assert.unreachable(); } catch (e) {
    assert.match((e as Error).message, /not in the Hugging Face cache.*hf download fla-hub\/absent/);
  }
  // refs/main naming a revision that is not downloaded: an error, not the other snapshot
  writeFileSync(join(cache, 'models--fla-hub--tiny', 'refs', 'main'), 'def456\n');
  try { resolveModelDir('fla-hub/tiny', { HF_HUB_CACHE: cache }); assert.unreachable(); } catch (e) {
    assert.match((e as Error).message, /refs\/main .* names revision def456, whose snapshot is not there \(snapshots: abc123\)/);
  }
  // no refs/main: the only snapshot
  rmSync(join(cache, 'models--fla-hub--tiny', 'refs', 'main'));
  assert.is(resolveModelDir('fla-hub/tiny', { HF_HUB_CACHE: cache }), snap);
});

// ---------------------------------------------------------------- text through a real tokenizer

const tiny = await makeTinyFlaFolder(join(tmp, 'tiny-mistral'));
const lm = await RetNetLM.load(tiny);
const TEXT = 'Retention networks keep a decayed state: héllo wörld, 你好, 🙂.\n';

test('text: BOS added, bits per byte over every byte, perplexity = exp(nll / predicted tokens); ids score as given', async () => {
  const ids = lm.tokenizer.encode(TEXT);
  assert.is(ids[0], 1, 'BOS first');
  const r = await lm.score(TEXT, { backend: 'wasm', perToken: true });
  assert.is(r.tokens, ids.length);
  assert.is(r.bytes, Buffer.byteLength(TEXT));
  assert.ok(Math.abs(r.bitsPerByte! - r.nll / Math.LN2 / Buffer.byteLength(TEXT)) < 1e-12 * r.bitsPerByte!);
  assert.ok(Math.abs(r.perplexity - Math.exp(r.nll / (ids.length - 1))) < 1e-9 * r.perplexity);
  const byIds = await lm.score(ids, { backend: 'wasm', perToken: true });
  assert.equal(Array.from(byIds.logprobs!), Array.from(r.logprobs!), 'text and its ids score alike');
  const bytes = await lm.score(new TextEncoder().encode(TEXT), { backend: 'wasm' });
  assert.is(bytes.nll, r.nll, 'a Uint8Array is the UTF-8 of a text');
  // a leading byte-order mark is text like any other: all its bytes count, and it scores as U+FEFF
  const withBom = await lm.score(Uint8Array.from([0xef, 0xbb, 0xbf, ...new TextEncoder().encode(TEXT)]), { backend: 'wasm' });
  const bomText = await lm.score(`\uFEFF${TEXT}`, { backend: 'wasm' });
  assert.is(withBom.bytes, Buffer.byteLength(TEXT) + 3);
  assert.is(withBom.tokens, bomText.tokens); assert.is(withBom.nll, bomText.nll);
  assert.ok(withBom.tokens > ids.length, 'U+FEFF is at least one token');
  try { await lm.score(Uint8Array.of(0xff, 0x41)); assert.unreachable(); } catch (e) { assert.match((e as Error).message, /not valid UTF-8/); }
  try { await lm.score([5, 40000]); assert.unreachable(); } catch (e) { assert.match((e as Error).message, /input\[1\] = 40000 is not a token id in \[0, 32000\)/); }
  // js (float64) and wasm agree on this model to float32 accuracy (d = 32, V = 32,000: the logits' dot products are short)
  const js = await lm.score(TEXT, { backend: 'js' });
  assert.ok(Math.abs(js.nll - r.nll) <= 1e-5 * Math.abs(js.nll), `nll js ${js.nll} wasm ${r.nll}`);
});

test('generate: greedy continuation = argmax of logits() step by step; stream pieces concatenate to the text; stop strings and maxNewTokens', async () => {
  const g = await lm.generate('The state', { maxNewTokens: 12, backend: 'js' });
  assert.is(g.ids.length, 12);
  assert.ok(['length', 'eos'].includes(g.stopReason));
  // the same ids by re-running the whole forward each step (parallel form, float64)
  const ids = Array.from(lm.tokenizer.encode('The state'));
  for (let i = 0; i < g.ids.length; i++) {
    const { logits } = await lm.logits(Int32Array.from(ids), { backend: 'js', numChunks: null });
    const V = lm.vocab, row = logits.subarray((ids.length - 1) * V, ids.length * V);
    let best = 0; for (let v = 1; v < V; v++) if (row[v] > row[best]) best = v;
    assert.is(g.ids[i], best, `token ${i}`);
    ids.push(best);
  }
  // the text continues the prompt's: decode(prompt + generated) past the prompt's text (before, g.text was
  // decode(generated) alone, which drops a first word token's leading space: "The state" + "State" for " State")
  const promptIds = Array.from(lm.tokenizer.encode('The state'));
  const full = lm.tokenizer.decode([...promptIds, ...g.ids]), shown = lm.tokenizer.decode(promptIds);
  assert.is(shown + g.text, full);
  const pieces: string[] = [];
  for await (const p of lm.stream('The state', { maxNewTokens: 12, backend: 'js' })) pieces.push(p);
  assert.is(pieces.join(''), g.text);
  // sampling is seeded: same seed, same text
  const s1 = await lm.generate('The state', { maxNewTokens: 8, temperature: 1, topK: 50, topP: 0.9, seed: 3 });
  const s2 = await lm.generate('The state', { maxNewTokens: 8, temperature: 1, topK: 50, topP: 0.9, seed: 3 });
  assert.is(s1.text, s2.text);
  if (g.text.length > 3) {
    const stopAt = g.text.slice(2, 4);
    const st = await lm.generate('The state', { maxNewTokens: 12, backend: 'js', stop: [stopAt] });
    assert.is(st.stopReason, 'stop');
    assert.is(st.text, g.text.slice(0, g.text.indexOf(stopAt)));
  }
  // a prompt of more than one chunk (600 ids: chunks of 256): onPrefill after each chunk, and the
  // continuation that of one prefill call and the step (the same chunk boundaries: the same numbers)
  const long = Int32Array.from({ length: 600 }, (_, i) => (i === 0 ? 1 : 3 + ((i * 37) % (lm.vocab - 3))));
  const calls: number[] = [];
  const gl = await lm.generate(long, { maxNewTokens: 3, onPrefill: (done, total) => { calls.push(done); assert.is(total, 600); } });
  assert.equal(calls, [256, 512, 600]);
  let r = lm.prefill(long, 256, 'wasm');
  const want: number[] = [];
  for (let i = 0; i < 3; i++) {
    let id = 0; for (let v = 1; v < r.logprobs.length; v++) if (r.logprobs[v] > r.logprobs[id]) id = v;
    want.push(id);
    if (i < 2) r = lm.step(id, r.state, { backend: 'wasm' });
  }
  assert.equal(Array.from(gl.ids), want);
  const ac = new AbortController();
  try {
    await lm.generate(long, { maxNewTokens: 3, signal: ac.signal, onPrefill: (done) => { if (done === 256) ac.abort(); } });
    assert.unreachable('aborted between chunks');
  } catch (e) { assert.is((e as { code?: string }).code, 'E_ABORTED'); }
  // onPrefill: once, with the prompt's token count, before the first new token
  const seen: [number, number][] = [];
  let firstPiece = -1;
  for await (const piece of lm.stream('The state', { maxNewTokens: 3, onPrefill: (n, sec) => seen.push([n, sec]) })) { if (firstPiece < 0) firstPiece = seen.length; void piece; }
  assert.is(seen.length, 1);
  assert.is(seen[0][0], lm.tokenizer.encode('The state').length);
  assert.ok(seen[0][1] >= 0 && firstPiece === 1, 'called before the first piece');
  // warmUp: packs the step (stepInfo then names it) and the head; generating after it gives the same ids
  // (its state's memory goes to the next state); unknown options are refused
  const before = await lm.generate('The state', { maxNewTokens: 6, temperature: 1, seed: 9 });
  const fresh = await RetNetLM.loadFolder(tiny);
  try {
    const sec = fresh.warmUp({ precision: 'f32' });
    assert.ok(sec >= 0 && fresh.model.stepInfo()?.precision === 'f32', 'the step is packed');
    assert.equal([...(await fresh.generate('The state', { maxNewTokens: 6, temperature: 1, seed: 9 })).ids], [...before.ids]);
    try { fresh.warmUp({ backend: 'wasm' } as object); assert.unreachable('unknown key'); } catch (e) { assert.is((e as { code?: string }).code, 'E_OPTION'); }
  } finally { await fresh.close(); }
  // onToken: every generated id, in order, as generate() returns them (sampled, so not one token repeated)
  const got: number[] = [];
  const gen = await lm.generate('The state', { maxNewTokens: 7, temperature: 1, seed: 3, onToken: (id) => got.push(id) });
  assert.equal(got, [...gen.ids]);
  for (const bad of [{ topP: 0 }, { topK: -1 }, { maxNewTokens: 1.5 }, { stop: [''] }, { onPrefill: 3 }, { onToken: 'x' }]) {
    try { await lm.generate('x', bad as object); assert.unreachable(JSON.stringify(bad)); } catch (e) { assert.is((e as { code?: string }).code, 'E_OPTION', JSON.stringify(bad)); }
  }
});

const registry = new Map<string, Command>([[score.name, score], [generate.name, generate]]);
async function cli(args: string[], stdin = ''): Promise<{ code: number; out: string; err: string }> {
  const out: Buffer[] = [], err: Buffer[] = [];
  const io: CommandIO = { stdout: { write: (s) => out.push(Buffer.from(s)) }, stderr: { write: (s) => err.push(Buffer.from(s)), isTTY: false }, stdin: Readable.from(stdin ? [Buffer.from(stdin)] : []) };
  const code = await registry.get(args[0])!.run(args.slice(1), io);
  return { code, out: Buffer.concat(out).toString(), err: Buffer.concat(err).toString() };
}

test('CLI: score --model DIR prints tokens and perplexity, --jsonl records gain tokens/nll/ppl; generate --model DIR prints text', async () => {
  const file = join(tmp, 'doc.txt');
  writeFileSync(file, TEXT);
  const jsonl = join(tmp, 'scores.jsonl');
  const r = await cli(['score', '--model', tiny, '--jsonl', jsonl, file]);
  assert.is(r.code, 0, r.err);
  const want = await lm.score(TEXT);
  assert.match(r.out, new RegExp(`doc\\.txt: ${want.bytes} bytes, ${want.tokens} tokens, [\\d.]+ bits, ${want.bitsPerByte!.toFixed(4)} bits/byte, perplexity ${want.perplexity.toFixed(3)}, \\d+ tokens/s`));
  const rec = JSON.parse(readFileSync(jsonl, 'utf8').trim());
  assert.is(rec.tokens, want.tokens);
  assert.ok(Math.abs(rec.ppl - want.perplexity) < 1e-9 * want.perplexity);
  const g = await cli(['generate', '--model', tiny, '--prompt', 'The state', '--max-new-tokens', '12', '--backend', 'js']);
  assert.is(g.code, 0, g.err);
  const want2 = await lm.generate('The state', { maxNewTokens: 12, backend: 'js' });
  assert.is(g.out, `The state${want2.text}\n`);
  // stderr: the prompt's tokens and time (the chunkwise prefill), then the generation's
  const nPrompt = lm.tokenizer.encode('The state').length, nGen = want2.ids.length;
  assert.match(g.err, new RegExp(`^prompt ${nPrompt} tokens in [\\d.]+ s \\(chunkwise, ([\\d.]+|-) tokens/s\\); generated ${nGen} tokens? in [\\d.]+ s \\(([\\d.]+|-) tokens/s, recurrent step, js\\)\\n$`));
  // on wasm the one-time packing (step and head) comes first and is said apart from the prompt's time
  const gw = await cli(['generate', '--model', tiny, '--prompt', 'The state', '--max-new-tokens', '12']);
  assert.is(gw.code, 0, gw.err);
  assert.match(gw.err, new RegExp(`^setup [\\d.]+ s \\(the weights packed for the step and the head\\); prompt ${nPrompt} tokens in [\\d.]+ s \\(chunkwise, ([\\d.]+|-) tokens/s\\); generated \\d+ tokens? in [\\d.]+ s \\(([\\d.]+|-) tokens/s, recurrent step, wasm\\)\\n`));
  assert.is(g.out, `${lm.tokenizer.decode([...lm.tokenizer.encode('The state'), ...want2.ids])}\n`, 'the printed text is the decoded sequence');
  // --jsonl onto a file of the model folder is refused before anything is written
  const tok = join(tiny, 'tokenizer.json'), before = readFileSync(tok);
  const alias = await cli(['score', '--model', tiny, '--jsonl', tok, file]);
  assert.ok(alias.code !== 0, 'refused');
  assert.match(alias.err, /tokenizer\.json/);
  assert.ok(readFileSync(tok).equals(before), 'tokenizer.json untouched');
  const bad = await cli(['generate', '--model', tiny, '--prompt', 'x', '--max-bytes', '3']);
  assert.is(bad.code, 2);
  assert.match(bad.err, /--max-new-tokens/);
  // --precision bf16: the bfloat16 step, the same text as the library's bf16 greedy continuation
  const gb = await cli(['generate', '--model', tiny, '--prompt', 'The state', '--max-new-tokens', '6', '--precision', 'bf16']);
  assert.is(gb.code, 0, gb.err);
  assert.is(gb.out, `The state${(await lm.generate('The state', { maxNewTokens: 6, precision: 'bf16' })).text}\n`);
  assert.match(gb.err, /recurrent step, wasm, bf16/);
  assert.match(gb.err, /\nengines: step .*bf16.*, \d+ threads?; prompt products: .*; retention: .*\n$/, 'the engines named');
  // --state-dtype float32: the library's continuation from a float32 state
  const gs = await cli(['generate', '--model', tiny, '--prompt', 'The state', '--max-new-tokens', '6', '--state-dtype', 'float32']);
  assert.is(gs.code, 0, gs.err);
  assert.is(gs.out, `The state${(await lm.generate('The state', { maxNewTokens: 6, stateDtype: 'float32' })).text}\n`);
  assert.match(gs.err, /recurrent step, wasm, float32 state/);
  // --prompt-file: the same as --prompt with the file's text; '-' reads stdin
  const pf = join(tmp, 'prompt.txt');
  writeFileSync(pf, 'The state');
  const gf = await cli(['generate', '--model', tiny, '--prompt-file', pf, '--max-new-tokens', '12', '--backend', 'js']);
  assert.is(gf.code, 0, gf.err);
  assert.is(gf.out, g.out);
  const gi = await cli(['generate', '--model', tiny, '--prompt-file', '-', '--max-new-tokens', '12', '--backend', 'js'], 'The state');
  assert.is(gi.out, g.out, gi.err);
  const empty = join(tmp, 'empty.txt'), latin = join(tmp, 'latin1.txt');
  writeFileSync(empty, ''); writeFileSync(latin, Buffer.from([0x63, 0x61, 0x66, 0xe9]));
  for (const [file, msg] of [[empty, /empty\.txt is empty/], [latin, /latin1\.txt is not UTF-8/], [tmp, /is a directory, not a prompt file/], [join(tmp, 'nope.txt'), /cannot read .*nope\.txt: ENOENT/]] as const) {
    const e = await cli(['generate', '--model', tiny, '--prompt-file', file]);
    assert.is(e.code, 1, `${file}: ${e.err}`);
    assert.match(e.err, msg);
    assert.is(e.out, '', 'nothing on stdout');
  }
  for (const [args, msg] of [[['--precision', 'f16'], /--precision must be one of f32, bf16 \(got "f16"\)/], [['--precision', 'bf16', '--backend', 'js'], /--precision bf16 needs --backend wasm/],
    [['--state-dtype', 'float16'], /--state-dtype must be float64 or float32/], [['--prompt-file', pf], /--prompt TEXT or --prompt-file FILE, not both/]] as const) {
    const e = await cli(['generate', '--model', tiny, '--prompt', 'x', ...args]);
    assert.is(e.code, 2, e.err);
    assert.match(e.err, msg);
  }
});

test('drift --model DIR: the chunk-count study on a fla model\'s retention and output (wasm within 1e-4 of float64 at L = 256 in f32, 16·2⁻⁹ in bf16)', async () => {
  const out = join(tmp, 'drift');
  const origLog = console.log, origErr = process.stderr.write.bind(process.stderr);
  console.log = () => {}; (process.stderr as { write: unknown }).write = () => true;
  let code: number;
  try { code = await main(['drift', '--model', fixture('gqa'), '--length', '256', '--backends', 'wasm', '--out-dir', out]); } finally {
    console.log = origLog; (process.stderr as { write: unknown }).write = origErr;
  }
  assert.is(code, 0);
  const j = JSON.parse(readFileSync(join(out, 'drift.json'), 'utf8')) as { input: string; dims: { arch: { name: string } }; rows: { relMaxError: number; precision: string; error?: string }[] };
  assert.is(j.dims.arch.name, 'fla');
  assert.match(j.input, /embeddings of 256 seeded random token ids/);
  assert.ok(j.rows.length >= 20);
  // float32 activations over 2 layers, d = 64: ~1e-6 measured; 1e-4 leaves room for the recurrent form's 256 state updates.
  // bf16: 8·2⁻⁹ per layer (test/precision.test.ts), 2 layers.
  assert.ok(j.rows.some((r) => r.precision === 'bf16') && j.rows.some((r) => r.precision === 'f32'));
  for (const r of j.rows) assert.ok(!r.error && r.relMaxError < (r.precision === 'bf16' ? 16 * 2 ** -9 : 1e-4), JSON.stringify(r));
});

test.after(async () => { await lm.close(); rmSync(tmp, { recursive: true, force: true }); });
test('config.json\'s eos_token_id beyond the tokenizer\'s ids (a padded model vocabulary): E_CONFIG naming eos_token_id and both sizes, exit 2 (before: E_OPTION naming an \'eosId\' option never passed)', async () => {
  // generate picks only among the tokenizer's ids (docs/models.md), so such an EOS could never end a generation
  const dir = copy('f32', 'eos-padded'); // vocab_size 128
  writeFileSync(join(dir, 'tokenizer.json'), JSON.stringify(charTokenizerJson()));
  editConfig(dir, (c) => { c.eos_token_id = 110; });
  const r = await refusal(dir);
  assert.is(r.code, 'E_CONFIG', r.message);
  assert.ok(r.message.includes('config.json') && r.message.includes('"eos_token_id"') && !r.message.includes('eosId'), r.message);
  assert.ok(r.message.includes(`[0, ${CHAR_TOKENIZER_VOCAB})`) && r.message.includes('the model 128') && r.message.includes('(got 110)'), r.message);
  const c = await cliExit(dir);
  assert.equal(c.codes, [2, 2], `exit codes ${c.codes}; ${c.err}`);
  assert.ok(c.err.includes('"eos_token_id"') && !c.err.includes('eosId'), c.err);
  // an EOS the tokenizer has loads, and generation stops there
  editConfig(dir, (c) => { c.eos_token_id = 40; });
  const lm = await RetNetLM.load(dir);
  try {
    assert.is(lm.tokenizer.eosId, 40);
    assert.is(lm.tokenizer.vocabSize, CHAR_TOKENIZER_VOCAB);
  } finally { await lm.close(); }
});

test.run();
