// The small per-chunk tables the WASM kernels take as inputs, computed here in
// float64 (so their precision does not depend on the absolute position) and
// rounded to float32 once. Each writes into a caller-provided Float32Array
// (a view of the shared memory) and returns it.

/** pow[d] = γ^d for d = 0..n  → length n+1 (f32_retention_intra/summary/cross). */
export function decayPowers(gamma: number, n: number, out: Float32Array = new Float32Array(n + 1)): Float32Array {
  for (let d = 0; d <= n; d++) out[d] = Math.pow(gamma, d);
  return out;
}

/** invSqrtC[i] = 1/sqrt(c_{pos0+i}), c_m = Σ_{t≤m} γ^t = (1 − γ^{m+1})/(1 − γ)  (normalizeAttn). */
export function invSqrtDecaySums(gamma: number, pos0: number, n: number, out: Float32Array = new Float32Array(n)): Float32Array {
  for (let i = 0; i < n; i++) {
    const m = pos0 + i;
    const c = gamma === 1 ? m + 1 : -Math.expm1((m + 1) * Math.log(gamma)) / (1 - gamma);
    out[i] = 1 / Math.sqrt(c);
  }
  return out;
}

/** cos/sin tables [rows, dk/2] for absolute positions pos0..pos0+rows−1; angle [dk] repeats each frequency twice. */
export function rotaryTables(angle: ArrayLike<number>, dk: number, pos0: number, rows: number,
                             cos: Float32Array = new Float32Array(rows * (dk / 2)), sin: Float32Array = new Float32Array(rows * (dk / 2)),
                             f32Product = false): { cos: Float32Array; sin: Float32Array } {
  const half = dk / 2;
  for (let r = 0; r < rows; r++) {
    for (let i = 0; i < half; i++) {
      // f32Product: the angle t·θ rounded to float32 first (families trained with float32 angles)
      const t = f32Product ? Math.fround((pos0 + r) * angle[2 * i]) : (pos0 + r) * angle[2 * i];
      cos[r * half + i] = Math.cos(t);
      sin[r * half + i] = Math.sin(t);
    }
  }
  return { cos, sin };
}
