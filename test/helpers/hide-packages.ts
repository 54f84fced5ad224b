// A module-resolution hook that makes the packages named in $RETNET_HIDE_PACKAGES
// (comma-separated) fail to resolve exactly as a package that is not installed
// does (ERR_MODULE_NOT_FOUND, "Cannot find package 'X'"). Loaded with
// `node --import=<this file's URL>`; Node passes --import on to worker threads, so
// the tfjs worker sees the same missing packages. Used by the tests of the
// "engine not installed" error.
import { register } from 'node:module';

const hidden = (process.env.RETNET_HIDE_PACKAGES ?? '').split(',').filter(Boolean);
const hook = `
const hidden = new Set(${JSON.stringify(hidden)});
export async function resolve(specifier, context, next) {
  if (hidden.has(specifier)) {
    const e = new Error("Cannot find package '" + specifier + "' imported from " + context.parentURL + " (hidden by RETNET_HIDE_PACKAGES)");
    e.code = 'ERR_MODULE_NOT_FOUND';
    throw e;
  }
  return next(specifier, context);
}`;
register('data:text/javascript,' + encodeURIComponent(hook));
