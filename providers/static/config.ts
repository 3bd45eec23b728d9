import { z } from 'zod';
import { blockName, blockNamespaces } from '../../config/block.ts';

/** The config block of a static inventory: machines listed in a YAML or JSON file. */
export const staticProviderSchema = z.strictObject({
  type: z.literal('static'),
  /** Names this block; appears in scope keys (`static:<name>`) and in metrics. */
  name: blockName,
  /** Namespaces this block's instances may be put in (narrows mapping.namespace.allowed). */
  namespaces: blockNamespaces,
  /** Path of the inventory file; a relative path is resolved against the config file's folder. */
  inventory: z.string().min(1),
  /** The account recorded on every instance of this inventory (for sources and locality); defaults to the block name. */
  account: z.string().min(1).optional(),
});

/** A static provider block after validation. */
export type StaticProviderConfig = z.infer<typeof staticProviderSchema>;
