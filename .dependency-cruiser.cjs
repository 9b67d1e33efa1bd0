/**
 * The layers of src/ (README "Development"), bottom up; a module imports only from its own layer
 * or below. `npm run lint:layers` checks them (CI runs it).
 *
 *   ground    src/errors.ts, src/types.ts
 *   internal  src/internal, src/models, src/scene
 *   stages    src/sources, src/operators, src/sinks, src/backbone, src/learning, src/objects
 *   engine    src/engine, src/config
 *   runners   src/process, src/service, src/cluster, src/eval
 *   cli       src/cli, src/cli.ts, src/bench
 */
const STAGES = '^src/(sources|operators|sinks|backbone|learning|objects)/';
const RUNNERS = '^src/(process|service|cluster|eval)/';
const CLI = '^src/(cli/|cli\\.ts|bench/)';

module.exports = {
  forbidden: [
    {
      name: 'no-circular',
      severity: 'error',
      comment: 'No import cycles, between files or (through them) between folders.',
      from: { path: '^src/' },
      to: { circular: true },
    },
    {
      name: 'ground-imports-nothing',
      severity: 'error',
      comment: 'errors.ts and types.ts are the ground: they import nothing of the project but each other.',
      from: { path: '^src/(errors|types)\\.ts$' },
      to: { path: '^src/', pathNot: '^src/(errors|types)\\.ts$' },
    },
    {
      name: 'internal-below-stages',
      severity: 'error',
      comment: 'internal/, models/ and scene/ are helpers for the stages: they import only the ground and each other.',
      from: { path: '^src/(internal|models|scene)/' },
      to: { path: '^src/', pathNot: '^src/((internal|models|scene)/|errors\\.ts$|types\\.ts$)' },
    },
    {
      name: 'stages-below-engine',
      severity: 'error',
      comment: 'Stages never import the engine, the runners or the CLI.',
      from: { path: STAGES },
      to: { path: `^src/(engine|config)/|${RUNNERS}|${CLI}` },
    },
    {
      name: 'engine-below-runners',
      severity: 'error',
      comment: 'The engine composes stages; it never imports a runner or the CLI.',
      from: { path: '^src/(engine|config)/' },
      to: { path: `${RUNNERS}|${CLI}` },
    },
    {
      name: 'runners-below-cli',
      severity: 'error',
      comment: 'Runners are called by the CLI; they never import it (progress bars come in as a factory).',
      from: { path: RUNNERS },
      to: { path: CLI },
    },
    {
      name: 'not-to-test',
      severity: 'error',
      from: { path: '^src/' },
      to: { path: '^test/' },
    },
  ],
  options: {
    doNotFollow: { path: 'node_modules' },
    tsPreCompilationDeps: true,
    tsConfig: { fileName: 'tsconfig.json' },
    enhancedResolveOptions: {
      exportsFields: ['exports'],
      conditionNames: ['import', 'require', 'node', 'default'],
      extensions: ['.ts', '.js'],
    },
  },
};
