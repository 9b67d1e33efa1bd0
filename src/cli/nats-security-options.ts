/**
 * The NATS credential and TLS flags every command that connects to NATS shares (ingest, worker,
 * trainer, collect, process --cluster, doctor --nats). Secrets come from files or the environment
 * (NATS_PASS, NATS_TOKEN), never from an argument, which `ps` would show to every user.
 */
import { Option, type Command } from 'commander';
import type { NatsSecurity } from '../internal/nats-security.js';

export interface NatsSecurityFlags {
  natsUser?: string;
  natsPassFile?: string;
  natsTokenFile?: string;
  natsNkeySeedFile?: string;
  natsCreds?: string;
  natsCa?: string;
  natsCert?: string;
  natsKey?: string;
  natsServerName?: string;
}

/** --nats-user, --nats-pass-file, --nats-token-file, --nats-nkey-seed-file, --nats-creds, --nats-ca, --nats-cert, --nats-key, --nats-server-name. */
export function addNatsSecurityOptions(cmd: Command): Command {
  return cmd
    .addOption(new Option('--nats-user <name>', 'NATS user (password from --nats-pass-file or $NATS_PASS)').env('NATS_USER'))
    .addOption(new Option('--nats-pass-file <path>', 'file holding the NATS password').env('NATS_PASS_FILE'))
    .addOption(new Option('--nats-token-file <path>', 'file holding a NATS token (or set $NATS_TOKEN)').env('NATS_TOKEN_FILE'))
    .addOption(new Option('--nats-nkey-seed-file <path>', 'file holding a NATS user NKey seed (SU...)').env('NATS_NKEY_SEED_FILE'))
    .addOption(new Option('--nats-creds <path>', 'NATS .creds file (user JWT + seed)').env('NATS_CREDS'))
    .addOption(new Option('--nats-ca <path>', "PEM CA that signed the NATS server's certificate (turns TLS on)").env('NATS_CA'))
    .addOption(new Option('--nats-cert <path>', 'PEM client certificate for NATS (mutual TLS)').env('NATS_CERT'))
    .addOption(new Option('--nats-key <path>', 'PEM key of --nats-cert').env('NATS_KEY'))
    .addOption(new Option('--nats-server-name <host>', "host name the NATS server's certificate carries, if not the URL's"));
}

/** The flags (and $NATS_PASS / $NATS_TOKEN) as the shared security settings; undefined when none is given. */
export function natsSecurityFromFlags(flags: NatsSecurityFlags, env: NodeJS.ProcessEnv = process.env): NatsSecurity | undefined {
  const pass = env['NATS_PASS'];
  const token = env['NATS_TOKEN'];
  const tlsGiven =
    flags.natsCa !== undefined || flags.natsCert !== undefined || flags.natsKey !== undefined || flags.natsServerName !== undefined;
  const sec: NatsSecurity = {
    ...(flags.natsUser !== undefined ? { user: flags.natsUser } : {}),
    ...(flags.natsUser !== undefined && flags.natsPassFile !== undefined ? { passFile: flags.natsPassFile } : {}),
    ...(flags.natsUser !== undefined && flags.natsPassFile === undefined && pass !== undefined && pass !== '' ? { pass } : {}),
    ...(flags.natsTokenFile !== undefined ? { tokenFile: flags.natsTokenFile } : {}),
    ...(flags.natsTokenFile === undefined && token !== undefined && token !== '' ? { token } : {}),
    ...(flags.natsNkeySeedFile !== undefined ? { nkeySeedFile: flags.natsNkeySeedFile } : {}),
    ...(flags.natsCreds !== undefined ? { credsFile: flags.natsCreds } : {}),
    ...(tlsGiven
      ? {
          tls: {
            ...(flags.natsCa !== undefined ? { caFile: flags.natsCa } : {}),
            ...(flags.natsCert !== undefined ? { certFile: flags.natsCert } : {}),
            ...(flags.natsKey !== undefined ? { keyFile: flags.natsKey } : {}),
            ...(flags.natsServerName !== undefined ? { serverName: flags.natsServerName } : {}),
          },
        }
      : {}),
  };
  return Object.keys(sec).length === 0 ? undefined : sec;
}
