import { existsSync } from 'node:fs';
import { mkdir } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { Logger } from 'pino';
import type { PipelineConfig } from '../config/pipeline-schema.js';
import { InferenceClient } from '../backbone/inference-client.js';
import type { BackboneInfo } from '../backbone/backbone.js';
import { refineFrom } from '../backbone/refine-options.js';
import { workingSize } from '../internal/working-size.js';
import { loadCheckpoint } from '../learning/checkpoint.js';
import type { HeadState } from '../learning/head-state.js';
import { checkClassNames, expectedClassCount } from '../learning/learning-options.js';
import { ObjectFinder } from '../objects/object-finder.js';
import { OutputUnwritableError } from '../errors.js';

/** Default working-frame aspect for live pipelines (sources of other shapes are scaled to it). */
const DEFAULT_ASPECT = 9 / 16;

/** What a service segments with: the backbone, the working size, the head to start from, LOST. */
export interface ServiceModel {
  readonly inference: InferenceClient;
  readonly info: BackboneInfo;
  readonly size: { readonly width: number; readonly height: number };
  /** The head of `learning.head`, or of the checkpoint `learning.resume` found. */
  readonly initial?: HeadState;
  readonly finder?: ObjectFinder;
  close(): Promise<void>;
}

/**
 * Loads the model a pipeline file names. The checkpoint's folder is made first, so a path that
 * cannot hold it fails before the model loads; anything started is released when a later step fails.
 */
export async function openServiceModel(config: Readonly<PipelineConfig>, logger: Logger): Promise<ServiceModel> {
  const l = config.learning;
  if (l.checkpoint)
    await mkdir(dirname(l.checkpoint), { recursive: true }).catch((err: unknown) => {
      throw new OutputUnwritableError(
        l.checkpoint as string,
        `cannot create its folder for learning.checkpoint (${(err as NodeJS.ErrnoException).code ?? String(err)})`,
        err,
      );
    });
  const inference = await InferenceClient.start(config.model.backbone, {
    device: config.model.device,
    ...(config.model.threads !== undefined ? { threads: config.model.threads } : {}),
    refine: refineFrom(config.model.refine.radius, config.model.refine.eps, 'model.refine'),
  });
  try {
    const info = inference.info;
    logger.info({ backbone: info.name, provider: info.provider, reason: info.providerReason }, 'backbone loaded');
    const size =
      info.inputWidth > 0
        ? { width: info.inputWidth, height: info.inputHeight }
        : workingSize(
            { width: config.model.width, height: config.model.height ?? Math.round(config.model.width * DEFAULT_ASPECT) },
            info.patchSize,
            { width: config.model.width, ...(config.model.height !== undefined ? { height: config.model.height } : {}) },
          );
    const initial = await loadInitialHead(config, info.dim, logger);
    // LOST's N² degree pass runs in ONNX Runtime (ObjectFinder): in JS it costs as much as the backbone.
    const finder = config.model.objects
      ? await ObjectFinder.create(info.patchSize, config.model.threads !== undefined ? { threads: config.model.threads } : {})
      : undefined;
    return {
      inference,
      info,
      size,
      ...(initial ? { initial } : {}),
      ...(finder ? { finder } : {}),
      close: async () => {
        await inference.close();
        await finder?.close();
      },
    };
  } catch (err) {
    await inference.close();
    throw err;
  }
}

/** resume: the checkpoint of an earlier run, when there is one (the first run starts afresh); head: a file that must exist. */
async function loadInitialHead(config: Readonly<PipelineConfig>, dim: number, logger: Logger): Promise<HeadState | undefined> {
  const l = config.learning;
  const resumeFrom = l.resume && l.checkpoint !== undefined && existsSync(l.checkpoint) ? l.checkpoint : undefined;
  if (l.resume && resumeFrom === undefined)
    logger.info({ checkpoint: l.checkpoint }, 'no checkpoint to resume from yet: learning a new head');
  const headFile = l.head ?? resumeFrom;
  const k = expectedClassCount({ k: l.classes, extraClusters: l.extraClusters });
  if (!headFile) {
    if (l.names) checkClassNames(l.names, k, l.maxClasses, 'learning.names');
    return undefined;
  }
  const initial = await loadCheckpoint(headFile, { dim, ...(k === undefined ? {} : { k }) });
  // A resumed head keeps the names it was given (renames included); a head file takes the file's names.
  if (!l.names || (resumeFrom !== undefined && l.head === undefined)) return initial;
  checkClassNames(l.names, initial.k, l.maxClasses, 'learning.names');
  return { ...initial, names: [...l.names] };
}
