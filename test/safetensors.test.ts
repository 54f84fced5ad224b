// safetensors reader/writer: round trips, dtype conversion, ranged reads.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { chmodSync, lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { RetNet, SafetensorsFile, SafetensorsWriter, readSafetensors, writeSafetensors } from '../src/index.js';
import { halfToFloat } from '../src/safetensors.js';

const dir = mkdtempSync(join(tmpdir(), 'retnet-st-'));

test('round trip of F32, F64, I32 with metadata', () => {
  const p = join(dir, 'rt.safetensors');
  const a = Float32Array.from([1, -2.5, 3e-7, 4]);
  const b = Float64Array.from([Math.PI, -Math.E]);
  const c = Int32Array.from([7, -8, 9]);
  writeSafetensors(p, { a: { shape: [2, 2], data: a }, b: { shape: [2], data: b }, c: { shape: [3], data: c } }, { note: 'hi' });
  const { tensors, metadata } = readSafetensors(p);
  assert.equal(metadata.note, 'hi');
  assert.equal([...tensors.get('a')!.data], [...a]);
  assert.equal(tensors.get('a')!.shape, [2, 2]);
  assert.equal([...tensors.get('b')!.data], [...b]);
  assert.ok(tensors.get('b')!.data instanceof Float64Array);
  assert.equal([...tensors.get('c')!.data], [...c]);
});

test('F16 and BF16 decode to float32 exactly', () => {
  // F16: 1.0 = 0x3c00, -2.0 = 0xc000, smallest subnormal 0x0001 = 2^-24, inf 0x7c00
  assert.equal(halfToFloat(0x3c00), 1);
  assert.equal(halfToFloat(0xc000), -2);
  assert.equal(halfToFloat(0x0001), 2 ** -24);
  assert.equal(halfToFloat(0x7c00), Infinity);
  const p = join(dir, 'half.safetensors');
  const f16 = Uint16Array.from([0x3c00, 0xc000, 0x3555]); // 1, -2, 0.333251953125
  const bf16 = Uint16Array.from([0x3f80, 0xc040, 0x3eab]); // 1, -3, 0.333984375
  const hdr = JSON.stringify({ h: { dtype: 'F16', shape: [3], data_offsets: [0, 6] }, g: { dtype: 'BF16', shape: [3], data_offsets: [6, 12] } });
  const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(hdr.length));
  writeFileSync(p, Buffer.concat([len, Buffer.from(hdr), Buffer.from(f16.buffer), Buffer.from(bf16.buffer)]));
  const { tensors } = readSafetensors(p);
  assert.equal([...tensors.get('h')!.data], [1, -2, 0.333251953125]);
  assert.equal([...tensors.get('g')!.data], [1, -3, 0.333984375]);
});

test('streamed writes in any order and ranged reads', () => {
  const p = join(dir, 'stream.safetensors');
  const w = new SafetensorsWriter(p, [{ name: 'out', dtype: 'F32', shape: [4, 3] }]);
  w.write('out', 6, Float32Array.from([6, 7, 8, 9, 10, 11]));
  w.write('out', 0, Float32Array.from([0, 1, 2, 3, 4, 5]));
  w.close();
  const f = SafetensorsFile.open(p);
  assert.equal([...f.readElements('out', 3, 4)], [3, 4, 5, 6]);
  assert.equal([...f.read('out').data], [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
  assert.throws(() => f.readElements('out', 10, 5), /outside tensor "out" of 12 elements/);
  f.close();
});

test('writeSafetensors replaces a file only once the new one is complete: a failed write leaves the old one and no temporary file', () => {
  const d = join(dir, 'atomic');
  mkdirSync(d);
  const p = join(d, 'model.safetensors');
  writeSafetensors(p, { a: { shape: [2], data: Float32Array.from([1, 2]) } });
  chmodSync(p, 0o640);
  const before = readFileSync(p);
  // data that fails while its bytes are written (after the header is out): here a getter that throws
  class Failing extends Float32Array { override get byteLength(): number { throw new Error('disk full (simulated)'); } }
  assert.throws(() => writeSafetensors(p, { a: { shape: [2], data: new Failing(2) } }), /disk full \(simulated\)/);
  assert.ok(readFileSync(p).equals(before), 'the previous file is byte-identical');
  assert.equal(readdirSync(d), ['model.safetensors'], 'no temporary file left');
  // the header says 2 elements, the data has 3 (or 1): refused before anything is written (before: 3 failed
  // midway, and 1 wrote a file whose second element was a silent 0)
  assert.throws(() => writeSafetensors(p, { a: { shape: [2], data: Float32Array.from([7, 8, 9]) } }), /tensor "a" has shape \[2\] \(2 elements\) but 3 elements of data/);
  assert.throws(() => writeSafetensors(p, { a: { shape: [2], data: Float32Array.from([7]) } }), /but 1 elements of data/);
  assert.ok(readFileSync(p).equals(before), 'the previous file is byte-identical');
  assert.equal(readdirSync(d), ['model.safetensors'], 'no temporary file left');
  // a good write replaces it, keeping its permissions
  writeSafetensors(p, { a: { shape: [3], data: Float32Array.from([7, 8, 9]) } });
  assert.equal([...readSafetensors(p).tensors.get('a')!.data], [7, 8, 9]);
  assert.is(statSync(p).mode & 0o777, 0o640, 'permissions kept');
  assert.equal(readdirSync(d), ['model.safetensors']);
});

test('the writer refuses what the format cannot hold or would hold wrongly (before: written, or written as zeros)', () => {
  const p = join(dir, 'refused.safetensors');
  const f1 = Float32Array.of(1);
  assert.throws(() => writeSafetensors(p, { a: { shape: [2], data: [1, 2] as never } }), /data must be a Float32Array, Float64Array, Int32Array or Uint8Array \(got a plain Array\)/); // was U8 zeros
  assert.throws(() => writeSafetensors(p, { a: { shape: [2], data: new Uint16Array(2) as never } }), /got a Uint16Array/);
  assert.throws(() => writeSafetensors(p, { __metadata__: { shape: [1], data: f1 } }), /"__metadata__" cannot name a tensor/); // was unreadable
  assert.throws(() => writeSafetensors(p, { '': { shape: [1], data: f1 } }), /non-empty name/);
  assert.throws(() => writeSafetensors(p, { a: { shape: [-1], data: new Float32Array(0) } }), /has shape \[-1\]; a shape is non-negative integers/);
  assert.throws(() => writeSafetensors(p, { a: { shape: [1], data: f1 } }, { n: 5 as never }), /metadata "n" must be a string/); // was unreadable
  assert.throws(() => new SafetensorsWriter(p, [{ name: 'a', dtype: 'F32', shape: [1] }, { name: 'a', dtype: 'F32', shape: [2] }]), /two tensors named "a"/);
  assert.not.ok(statSync(p, { throwIfNoEntry: false }), 'nothing written');
  // empty and 0-d tensors are fine
  writeSafetensors(p, { e: { shape: [2, 0], data: new Float32Array(0) }, s: { shape: [], data: Float32Array.of(7) } }, { k: 'v' });
  const r = readSafetensors(p);
  assert.equal([...r.tensors.get('s')!.data], [7]); assert.equal(r.tensors.get('e')!.shape, [2, 0]); assert.equal(r.metadata, { k: 'v' });
});

test('writeSafetensors through a symlink replaces the file it names and keeps the link; a model saves over its own source', async () => {
  const d = join(dir, 'link');
  mkdirSync(d);
  const real = join(d, 'real.safetensors'), link = join(d, 'link.safetensors');
  writeSafetensors(real, { a: { shape: [1], data: Float32Array.from([1]) } });
  symlinkSync(real, link);
  writeSafetensors(link, { a: { shape: [1], data: Float32Array.from([5]) } });
  assert.ok(lstatSync(link).isSymbolicLink(), 'still a link');
  assert.is(readlinkSync(link), real);
  assert.equal([...readSafetensors(real).tensors.get('a')!.data], [5]);
  const mp = join(d, 'm.safetensors');
  const m = RetNet.init({ numLayer: 1, numHeads: 2, dimModel: 8, valueFactor: 2, mlpMult: 2, seed: 3 });
  m.save(mp);
  const bytes = readFileSync(mp);
  const m2 = await RetNet.load(mp);
  m2.save(mp);
  assert.ok(readFileSync(mp).equals(bytes), 'saved over its source: the same bytes');
  await m.close(); await m2.close();
  assert.equal(readdirSync(d).sort(), ['link.safetensors', 'm.safetensors', 'real.safetensors']);
});

test('a header whose tensors share, overlap or leave bytes is refused, naming the tensors (before: loaded, computing with the wrong weights)', () => {
  // two F32 tensors a [2], b [2]: 16 data bytes; each case breaks the layout one way
  const write = (name: string, hdr: string, dataBytes = 16) => {
    const p = join(dir, `layout-${name}.safetensors`);
    const len = Buffer.alloc(8); len.writeBigUInt64LE(BigInt(hdr.length));
    writeFileSync(p, Buffer.concat([len, Buffer.from(hdr), Buffer.alloc(dataBytes)]));
    return p;
  };
  const t = (o: [number, number]) => `{"dtype":"F32","shape":[${(o[1] - o[0]) / 4}],"data_offsets":[${o[0]},${o[1]}]}`;
  const cases: [string, string, number, RegExp][] = [
    ['same bytes', `{"a":${t([0, 8])},"b":${t([0, 8])}}`, 8, /"b".*overlaps tensor "a"|"a".*overlaps tensor "b"/],
    ['shifted into the neighbour', `{"a":${t([0, 8])},"b":${t([4, 12])}}`, 12, /"b" \(bytes \[4, 12\)\) overlaps tensor "a"/],
    ['a tensor named twice', `{"a":${t([0, 8])},"a":${t([8, 16])}}`, 16, /header names "a" twice/],
    ['a hole at the start', `{"a":${t([8, 16])}}`, 16, /bytes \[0, 8\) of the data belong to no tensor \(before "a"\)/],
    ['trailing bytes', `{"a":${t([0, 8])}}`, 16, /holds 16 bytes but the tensors end at byte 8/],
  ];
  for (const [name, hdr, bytes, re] of cases) {
    const p = write(name.replace(/ /g, '-'), hdr, bytes);
    assert.throws(() => readSafetensors(p), (e: Error & { code?: string }) => e.code === 'E_SAFETENSORS' && re.test(e.message) && e.message.includes(p), name);
  }
  // zero-size tensors anywhere along the end-to-end layout are fine
  const ok = write('zero-size', `{"z0":{"dtype":"F32","shape":[0],"data_offsets":[0,0]},"a":${t([0, 8])},"z1":{"dtype":"F32","shape":[0],"data_offsets":[8,8]},"b":${t([8, 16])}}`);
  assert.equal([...readSafetensors(ok).tensors.keys()].sort(), ['a', 'b', 'z0', 'z1']);
});

test.run();
