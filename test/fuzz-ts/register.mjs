// `node --import ./test/fuzz-ts/register.mjs x.ts`: installs ts-loader.mjs (see there).
import { register } from 'node:module';

register('./ts-loader.mjs', import.meta.url);
