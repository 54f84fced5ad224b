// The documentation's runnable code blocks, run as a user would run them.
//
// A fenced block whose info string has the word `runnable` (```sh runnable,
// ```ts runnable) in README.md or docs/*.md is extracted and run here:
//   - sh blocks run with bash (-e -o pipefail) in a fresh project with this package
//     installed from its `npm pack` tarball (node_modules/retnet, node_modules/.bin/retnet
//     → its CLI, as `npm install` would link them), the blocks of one file in
//     order in one folder (a later block may use an earlier one's files). A line
//     whose comment says `# (download)` fetches something from the network and
//     is left out.
//   - ts blocks are compiled together with `tsc --strict` against the built
//     package as installed (its dist/ types, resolved as 'retnet' in that
//     project's node_modules), then each compiled block is run with node.
// The fla-hub quickstarts name `fla-hub/retnet-1.3B-100B`, a 2.7 GB download: here
// that name is replaced by a small local stand-in folder in the same format
// (test/helpers/fla-folder.ts: a random 2-layer fla RetNet with the real Mistral
// tokenizer), so the commands and the code run unchanged otherwise.
// Run it with `node dist/test/run.js docs-snippets` after `npm run build`.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ROOT } from './helpers.js';
import { makeTinyFlaFolder } from './helpers/fla-folder.js';

interface Block { file: string; line: number; lang: 'sh' | 'ts'; code: string }

/** Every ```sh runnable / ```ts runnable block of one markdown file. */
export function runnableBlocks(file: string, text: string): Block[] {
  const out: Block[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^```(\w+)([^\n]*)$/.exec(lines[i]!);
    if (!m) continue;
    let j = i + 1;
    while (j < lines.length && !/^```\s*$/.test(lines[j]!)) j++;
    const words = m[2]!.trim().split(/\s+/);
    if (words.includes('runnable')) {
      const lang = m[1] === 'ts' ? 'ts' : m[1] === 'sh' || m[1] === 'bash' ? 'sh' : undefined;
      if (!lang) throw new Error(`${file}:${i + 1}: runnable block of unknown language ${m[1]}`);
      out.push({ file, line: i + 1, lang, code: lines.slice(i + 1, j).join('\n') + '\n' });
    }
    i = j;
  }
  return out;
}

const docs = ['README.md', ...readdirSync(join(ROOT, 'docs')).filter((n) => n.endsWith('.md')).sort().map((n) => `docs/${n}`)];
const blocks = docs.flatMap((f) => runnableBlocks(f, readFileSync(join(ROOT, f), 'utf8')));

const FLA_NAME = /fla-hub\/retnet-[0-9.]+B-[0-9]+B/g;

function run(cmd: string, args: string[], cwd: string, timeoutMs: number): Promise<{ code: number | null; out: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const env: NodeJS.ProcessEnv = { ...process.env, NO_COLOR: '1', RETNET_DEBUG: '1' };
    delete env.FORCE_COLOR;
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (c: Buffer) => { out += c.toString(); });
    child.stderr.on('data', (c: Buffer) => { out += c.toString(); });
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('close', (code) => { clearTimeout(timer); resolve({ code, out, ms: Date.now() - t0 }); });
  });
}

test('the documentation has runnable blocks: the four quickstarts and the models guide', () => {
  const readme = blocks.filter((b) => b.file === 'README.md');
  assert.ok(readme.filter((b) => b.lang === 'sh').length >= 4, `README sh blocks: ${readme.length}`);
  assert.ok(readme.some((b) => b.lang === 'ts'), 'README has a runnable TypeScript example');
  assert.ok(blocks.some((b) => b.file === 'docs/models.md'), 'docs/models.md has runnable blocks');
});

test('README: at most 300 lines, each quickstart at most 25 lines', () => {
  const text = readFileSync(join(ROOT, 'README.md'), 'utf8');
  const lines = text.split('\n');
  assert.ok(lines.length <= 301, `README has ${lines.length} lines`);
  const starts = lines.flatMap((l, i) => (/^### \([a-d]\) /.test(l) ? [i] : []));
  assert.is(starts.length, 4, 'four quickstarts (a)–(d)');
  for (const s of starts) {
    let e = s + 1;
    while (e < lines.length && !/^#{1,3} /.test(lines[e]!)) e++;
    const body = lines.slice(s + 1, e).filter((l) => l.trim() !== '');
    assert.ok(body.length <= 25, `${lines[s]}: ${body.length} non-blank lines`);
  }
});

test('every runnable block runs: sh blocks in a scratch project, ts blocks compiled with tsc --strict and run', async () => {
  const tmp = mkdtempSync(join(tmpdir(), 'retnet-docs-'));
  try {
    // a fresh project with retnet installed from the tarball `npm pack` makes of this checkout, as the
    // README's install section does it (dependencies from the npm cache that `npm ci` filled, else the registry)
    const proj = join(tmp, 'project');
    mkdirSync(proj);
    writeFileSync(join(proj, 'package.json'), JSON.stringify({ name: 'docs-snippets', private: true, type: 'module' }));
    const packed = await run('npm', ['pack', '--silent', '--pack-destination', tmp], ROOT, 300_000);
    assert.is(packed.code, 0, `npm pack:\n${packed.out}`);
    const tgz = packed.out.trim().split('\n').filter((l) => l.endsWith('.tgz')).pop();
    assert.ok(tgz, `npm pack printed no tarball name:\n${packed.out}`);
    const inst = await run('npm', ['install', '--no-audit', '--no-fund', '--prefer-offline', join(tmp, tgz!)], proj, 600_000);
    assert.is(inst.code, 0, `npm install ${tgz}:\n${inst.out}`);
    console.log(`installed ${tgz} into a fresh project: npm pack ${packed.ms} ms, npm install ${inst.ms} ms`);
    // the stand-in for fla-hub/retnet-1.3B-100B (see the comment at the top)
    const fla = join(tmp, 'fla-standin');
    await makeTinyFlaFolder(fla);
    const subst = (code: string) => code.replace(FLA_NAME, fla);

    // TypeScript: one tsc run over every block
    const ts = blocks.filter((b) => b.lang === 'ts');
    const names = ts.map((b, i) => `snippet${i}.ts`);
    ts.forEach((b, i) => writeFileSync(join(proj, names[i]!), `// ${b.file}:${b.line}\n` + subst(b.code)));
    writeFileSync(join(proj, 'tsconfig.json'), JSON.stringify({
      compilerOptions: {
        strict: true, target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', outDir: 'out',
        noEmitOnError: true, skipLibCheck: true, types: ['node'], typeRoots: [join(ROOT, 'node_modules', '@types')],
      },
      files: names,
    }));
    // compiled once, then every block run side by side, while the shell blocks run
    const tsRuns = run(process.execPath, [join(ROOT, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', '.'], proj, 120_000).then(async (c) => {
      assert.is(c.code, 0, `tsc --strict on the TypeScript blocks (${ts.map((b) => `${b.file}:${b.line}`).join(', ')}):\n${c.out}`);
      const log = [`tsc --strict: ${ts.length} blocks in ${c.ms} ms`];
      await Promise.all(ts.map(async (b, i) => {
        const r = await run(process.execPath, [join('out', names[i]!.replace(/\.ts$/, '.js'))], proj, 60_000);
        assert.is(r.code, 0, `${b.file}:${b.line} failed when run (exit ${r.code}):\n${r.out}`);
        log.push(`${b.file}:${b.line} ran in ${r.ms} ms`);
      }));
      return log;
    });

    // shell: the blocks of each file in order, files side by side
    const byFile = new Map<string, Block[]>();
    for (const b of blocks.filter((x) => x.lang === 'sh')) byFile.set(b.file, [...(byFile.get(b.file) ?? []), b]);
    const shResults = [...byFile].map(async ([file, list]) => {
      const dir = join(tmp, file.replace(/[/.]/g, '_'));
      mkdirSync(dir);
      // the project's node_modules is found from here as from the project itself
      symlinkSync(join(proj, 'node_modules'), join(dir, 'node_modules'));
      const log: string[] = [];
      for (const b of list) {
        const code = subst(b.code).split('\n').filter((l) => !/#\s*\(download\)/.test(l)).join('\n');
        const r = await run('bash', ['-e', '-o', 'pipefail', '-c', code], dir, 60_000);
        log.push(`${b.file}:${b.line} exit ${r.code} in ${r.ms} ms`);
        assert.is(r.code, 0, `${b.file}:${b.line} failed (exit ${r.code}):\n${code}\n--- output ---\n${r.out}`);
      }
      return log;
    });
    const logs = await Promise.all([tsRuns, ...shResults]);
    console.log(logs.flat().join('\n'));
  } finally {
    rmSync(tmp, { recursive: true, force: true });
  }
});

test.run();
