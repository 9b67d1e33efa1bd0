#!/usr/bin/env node
// Prints stegostream's windowed class summaries from NATS, one line per window and stream.
//
//   node examples/summaries-nats.mjs [--nats nats://localhost:4222] [--prefix stegostream]
//                                    [--window 1s|10s|60s] [--stream NAME] [--count N] [--json]
//
// The service publishes them on <prefix>.<stream>.summary.<window> (README "Summaries"): per class
// the mean, min and max share of the frames over the window. Run from the project folder (it uses
// the project's `nats` package), or `npm install nats` beside it.
import { connect } from 'nats';
import { parseArgs } from 'node:util';

const { values } = parseArgs({
  options: {
    nats: { type: 'string', default: process.env.NATS_URL ?? 'nats://localhost:4222' },
    prefix: { type: 'string', default: 'stegostream' },
    window: { type: 'string', default: '1s' },
    stream: { type: 'string', default: '*' },
    count: { type: 'string' },
    json: { type: 'boolean', default: false },
  },
});
const count = values.count === undefined ? Infinity : Number(values.count);

const nc = await connect({ servers: values.nats.split(','), name: 'stegostream-summaries-example' });
const sub = nc.subscribe(`${values.prefix}.${values.stream}.summary.${values.window}`);
let seen = 0;
for await (const m of sub) {
  const s = m.json();
  if (values.json) console.log(JSON.stringify(s));
  else {
    const shares = s.classes.map((c) => `${c.name}=${c.mean.toFixed(3)}`).join(' ');
    console.log(`${s.end} ${s.stream} ${s.window} frames=${s.frames} head=${s.headVersion} ${shares}`);
  }
  if (++seen >= count) break;
}
await nc.drain();
