// One rule for every RETNET_* environment variable: an empty value is the
// same as an unset one (so `RETNET_BLAS= cmd` and `RETNET_TFJS_ENGINE= cmd`
// both mean "the default"); any other value is taken as given and checked by
// its reader.

/** The variable's value, or undefined when it is unset or empty. */
export function envValue(name: string): string | undefined {
  const v = process.env[name];
  return v === undefined || v === '' ? undefined : v;
}
