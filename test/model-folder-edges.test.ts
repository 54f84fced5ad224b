// A model folder's files and names as a careless copy or a shell leaves them: a FIFO or a broken
// symbolic link among its files (refused naming it, never a hang nor "no config.json"), the hub
// cache's variables with ~ and $VAR, an unreadable refs/main, ORG/NAME with a trailing slash, a
// tokenizer of another model (refused by info as by the load), a Git LFS pointer in place of the
// weights, a file of a folder given as --model, and RETNET_PRECISION / --chunk-size checked
// before the model loads. Each case was wrong before (see the messages' "before" notes in src/).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { RetNetLM } from '../src/index.js';
import { expandPath, hubCacheDir, hubName, modelFiles, resolveModelDir } from '../src/model/fla.js';
import { FIXTURES, ROOT } from './helpers.js';
import { makeTinyFlaFolder } from './helpers/fla-folder.js';

const tmp = mkdtempSync(join(tmpdir(), 'retnet-folder-edges-'));
const MAIN = join(ROOT, 'dist', 'src', 'cli', 'main.js');
const cli = (args: string[], env: Record<string, string> = {}) =>
  spawnSync(process.execPath, [MAIN, ...args], { cwd: tmp, encoding: 'utf8', timeout: 60_000, env: { ...process.env, NO_COLOR: '1', ...env } });
const f32 = join(FIXTURES, 'fla', 'f32');
const copy = (as: string) => { const d = join(tmp, as); cpSync(f32, d, { recursive: true }); return d; };
const mkfifo = (p: string) => { const r = spawnSync('mkfifo', [p]); if (r.status !== 0) throw new Error(`mkfifo ${p}: ${r.stderr}`); };
const tiny = await makeTinyFlaFolder(join(tmp, 'tiny')); // d 32, the 32k Mistral tokenizer
writeFileSync(join(tmp, 'a.txt'), 'hello there\n');

test('a FIFO as config.json, model.safetensors or tokenizer.json: refused naming it (before: the read blocked forever)', () => {
  for (const name of ['config.json', 'model.safetensors', 'tokenizer.json']) {
    const d = join(tmp, `fifo-${name}`);
    cpSync(tiny, d, { recursive: true });
    rmSync(join(d, name));
    mkfifo(join(d, name));
    assert.throws(() => modelFiles(d), (e: Error) => new RegExp(`${name.replace('.', '\\.')} is a FIFO, not a regular file`).test(e.message), name);
    const r = cli(['info', d]);
    assert.is(r.status, 2, `${name}: ${r.stderr}`);
    assert.match(r.stderr, /is a FIFO, not a regular file/, name);
  }
});

test('broken symbolic links (a hub snapshot copied without -L): named as such, not "no config.json" nor "no tokenizer"', async () => {
  for (const name of ['config.json', 'model.safetensors', 'tokenizer.json']) {
    const d = join(tmp, `broken-${name}`);
    cpSync(tiny, d, { recursive: true });
    rmSync(join(d, name));
    symlinkSync(`../../blobs/${name}-gone`, join(d, name));
    assert.throws(() => modelFiles(d), (e: Error) => /is a broken symbolic link \(to \.\.\/\.\.\/blobs\/.*-gone, which does not exist\)/.test(e.message), name);
    const r = cli(['info', d]);
    assert.is(r.status, 2, `${name}: info must not describe the folder (${r.stdout})`);
    assert.match(r.stderr, /broken symbolic link/, name);
  }
  // a link to a real file is fine (as the hub cache makes them)
  const ok = join(tmp, 'linked');
  mkdirSync(ok);
  for (const name of ['config.json', 'model.safetensors', 'tokenizer.json']) symlinkSync(join(tiny, name), join(ok, name));
  assert.is(modelFiles(ok).tokenizerPath, join(ok, 'tokenizer.json'));
});

test('the hub cache variables take ~ and $VAR / ${VAR}, as huggingface_hub expands them; ORG/NAME/ resolves as ORG/NAME', () => {
  const env = { HOME: homedir(), HF_HOME: '~/hf', X: '/x/y' };
  assert.is(hubCacheDir({ HF_HOME: '~/hf' }), join(homedir(), 'hf', 'hub'));
  assert.is(hubCacheDir({ HF_HUB_CACHE: '$X/cache' , X: '/x/y' }), '/x/y/cache');
  assert.is(hubCacheDir({ HF_HUB_CACHE: '${X}/c', X: '/x/y' }), '/x/y/c');
  assert.is(expandPath('$UNSET_VAR_RETNET/a', {}), '$UNSET_VAR_RETNET/a', 'an unset variable is left as written');
  assert.is(expandPath('a~b', env), 'a~b', 'only a leading ~');
  assert.is(expandPath('~/a', { HOME: '/h' }), '/h/a', "the env's HOME");
  assert.is(expandPath('$X/c', { X: '~', HOME: '/h' }), '~/c', '~ before the variables, as Python');
  // hub names follow the hub's rule: ./x/, ../x, org/--x are never taken for one
  for (const [spec, want] of [['fla-hub/retnet-1.3B-100B', 'fla-hub/retnet-1.3B-100B'], ['fla-hub/retnet-1.3B-100B/', 'fla-hub/retnet-1.3B-100B'],
    ['./flaa/', null], ['./flaa', null], ['../x', null], ['org/--x', null], ['-/-', null], ['org/x.', null], ['org/a..b', null]] as const) {
    assert.is(hubName(spec), want, spec);
  }
  const cache = join(tmp, 'hub');
  const snap = join(cache, 'models--fla-hub--tiny', 'snapshots', 'abc123');
  mkdirSync(join(cache, 'models--fla-hub--tiny', 'refs'), { recursive: true });
  cpSync(f32, snap, { recursive: true });
  writeFileSync(join(cache, 'models--fla-hub--tiny', 'refs', 'main'), 'abc123');
  assert.is(resolveModelDir('fla-hub/tiny', { HF_HUB_CACHE: '$C', C: cache }), snap);
  assert.is(resolveModelDir('fla-hub/tiny/', { HF_HUB_CACHE: cache }), snap, 'trailing slash');
  assert.ok(RetNetLM.isFolderSpec('fla-hub/tiny/'));
  const r = cli(['info', 'fla-hub/tiny/'], { HF_HUB_CACHE: cache });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stdout, new RegExp(`folder\\s+${snap.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}`));
  // a refs/main that cannot be read (here: a folder) is an error, not "no refs/main" (before: another
  // snapshot ran)
  rmSync(join(cache, 'models--fla-hub--tiny', 'refs', 'main'));
  mkdirSync(join(cache, 'models--fla-hub--tiny', 'refs', 'main'));
  assert.throws(() => resolveModelDir('fla-hub/tiny', { HF_HUB_CACHE: cache }), /refs\/main is a folder, not a regular file; it names the revision to run/);
});

test('a tokenizer with more ids than the model: info refuses it as the load does, naming tokenizer.json (before: info said fine)', async () => {
  const d = copy('f32-32k-tokenizer'); // vocabulary 128
  copyFileSync(join(tiny, 'tokenizer.json'), join(d, 'tokenizer.json'));
  const want = /tokenizer\.json has 32000 ids but the model's vocabulary \(vocab_size in .*config\.json, the embedding's rows\) has 128: not this model's tokenizer/;
  const r = cli(['info', d]);
  assert.is(r.status, 2, r.stdout);
  assert.match(r.stderr, want);
  try { await (await RetNetLM.load(d)).close(); assert.unreachable('loaded'); } catch (e) { assert.match((e as Error).message, want); }
});

test('a Git LFS pointer in place of model.safetensors is named as one; a file of a folder as --model points to the folder', () => {
  const d = copy('lfs');
  writeFileSync(join(d, 'model.safetensors'), 'version https://git-lfs.github.com/spec/v1\noid sha256:' + 'ab'.repeat(32) + '\nsize 2700000000\n');
  const r = cli(['info', d]);
  assert.is(r.status, 2, r.stdout);
  assert.match(r.stderr, /is a Git LFS pointer, not the weights .*git lfs pull/);
  const s = cli(['score', '--model', join(tiny, 'model.safetensors'), 'a.txt']);
  assert.is(s.status, 1, s.stderr);
  assert.match(s.stderr, /not a language-model checkpoint: missing embed\.weight; its tensors are a fla-hub RetNet's .*pass its folder/);
});

test('RETNET_PRECISION and --chunk-size checked before the model loads: exit 2 naming them (before: exit 1 after loading)', () => {
  const missing = join(tmp, 'no-such-model');
  for (const args of [['score', '--model', missing, 'a.txt'], ['generate', '--model', missing, '--prompt', 'x']]) {
    const r = cli(args, { RETNET_PRECISION: 'bogus' });
    assert.is(r.status, 2, `${args[0]}: ${r.stderr}`);
    assert.match(r.stderr, /RETNET_PRECISION must be one of f32, bf16 \(got "bogus"\)/);
  }
  // js runs never read the variable: not checked there (the shipped byte LM)
  const js = cli(['score', '--backend', 'js', 'a.txt'], { RETNET_PRECISION: 'bogus' });
  assert.is(js.status, 0, js.stderr);
  const c = cli(['score', '--model', missing, '--chunk-size', '16385', 'a.txt']);
  assert.is(c.status, 2, c.stderr);
  assert.match(c.stderr, /--chunk-size must be .*16384/);
  const o = cli(['score', '--model', missing, '--chunk-size', '16385', '--out', join(tmp, 'o.jsonl'), 'a.txt']);
  assert.is(o.status, 2, o.stderr);
  assert.match(o.stderr, /--chunk-size must be .*16384/);
});

test('generate names the precision that ran: RETNET_PRECISION=bf16 shows ", bf16" (before: the flag only); no tokenizer fails before the packing', () => {
  const r = cli(['generate', '--model', tiny, '--prompt', 'hello', '--max-new-tokens', '2'], { RETNET_PRECISION: 'bf16' });
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /recurrent step, wasm, bf16\)/);
  const n = cli(['generate', '--model', f32, '--prompt', 'hello']);
  assert.is(n.status, 2, n.stderr); // refused before the load, as a refused folder
  assert.match(n.stderr, /has no tokenizer\.json/);
  assert.not.match(n.stderr, /setup/);
});

test.run();
