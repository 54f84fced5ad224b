// `retnet worker`: take corpus shards from a BullMQ queue on Redis and score them here.
import { corpusWorker } from '../../corpus/score-corpus.js';
import { asModelRefusal, needTokenizer, parseIntOption, queueUrlOption, processIO, runCommand, UsageError, type Command, type CommandIO } from '../lm-util.js';
import { parse } from '../command.js';
import { redisTimeoutMs } from '../corpus-cli.js';
import { RUN_ID_RE } from '../../corpus/digest.js';

const usage = `usage: retnet worker --queue redis://[user:pass@]host:port[/db] [--model M.safetensors|DIR|ORG/NAME] [--run-id ID] [--lock-duration MS] [--redis-timeout SEC]
  Takes shards of \`retnet score --out … --queue …\` runs from the queue (every run on that
  Redis, or only --run-id's) and scores them with this machine's worker pool, one at a time.
  The model must be the coordinator's (its SHA-256 — of every file of a model folder — is checked on every job).
  --queue URL          the Redis the coordinator (\`score --queue\`) uses
  --model M            the model, as score's --model (default: the shipped byte LM)
  --run-id ID          take only that run's shards (score's --run-id; by default a digest of its inputs, model and options)
  --lock-duration MS   how long a shard of a killed worker waits before another worker
                       takes it (BullMQ lock; default 30000, at least 100)
  --redis-timeout SEC  exit 1 when Redis is unreachable this long (default 30)
  -h, --help           this text
  SIGINT/SIGTERM: stop taking shards, finish the current one, exit 0; a second signal exits at
  once (the shard goes back to the queue after --lock-duration). Before Redis answers, the
  first signal stops the wait (exit 0, "stopped while waiting for Redis").`;

export const worker: Command = {
  name: 'worker',
  summary: 'score corpus shards from a BullMQ queue (see score --queue)',
  usage,
  run(argv: string[], io: CommandIO = processIO()): Promise<number> {
    return runCommand(io, usage, async () => {
      const p = parse({ usage }, argv, {
        queue: { type: 'string' }, model: { type: 'string' }, 'run-id': { type: 'string' },
        'lock-duration': { type: 'string' }, 'redis-timeout': { type: 'string' },
      });
      if (p === null) return;
      const v = p.values as Record<string, string | undefined>;
      if (v.queue === undefined) throw new UsageError('--queue redis://host:port is required');
      queueUrlOption(v.queue);
      if (v['run-id'] !== undefined && !RUN_ID_RE.test(v['run-id'])) throw new UsageError(`--run-id must be letters, digits, _ . - (at most 64), as retnet score makes them (got ${JSON.stringify(v['run-id'])})`);
      const ac = new AbortController();
      let signals = 0;
      const onSignal = (sig: NodeJS.Signals) => {
        signals++;
        if (signals === 1) { io.stderr.write(`retnet: worker: ${sig}: finishing the current shard (again to exit at once)\n`); ac.abort(sig); } else process.exit(sig === 'SIGINT' ? 130 : 143);
      };
      needTokenizer(v.model, 'worker');
      process.on('SIGINT', onSignal); process.on('SIGTERM', onSignal);
      try {
        const stats = await corpusWorker({
          queue: v.queue, model: v.model, runId: v['run-id'], lockDurationMs: parseIntOption('lock-duration', v['lock-duration'], 100),
          redisTimeoutMs: redisTimeoutMs(v['redis-timeout']), log: (line) => io.stderr.write(`retnet: ${line}\n`), signal: ac.signal,
        }).catch((e: unknown) => { throw asModelRefusal(v.model, e); }); // a refused model folder: exit 2, as in score
        // not connected: the library has said it stopped while waiting for Redis
        if (stats.connected) io.stderr.write(`retnet: worker: stopped after ${stats.scored} shard${stats.scored === 1 ? '' : 's'} (${stats.failed} failed jobs); peak RSS ${(process.resourceUsage().maxRSS / 1024).toFixed(1)} MiB\n`);
      } finally {
        process.off('SIGINT', onSignal); process.off('SIGTERM', onSignal);
      }
    });
  },
};

export default worker;
