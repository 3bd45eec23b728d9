// The Compute v1 instances client, loaded with only the protos it uses. @google-cloud/compute ships
// one protos.json for all of Compute v1 (2,200 types, 12 MB): the instances client requires it
// whole when it is loaded and builds a protobuf root of all of it, which then stays resident in the
// GCP provider thread (about 60 MiB). The client only ever looks up its own service, so it is
// handed a copy that holds the Instances service and the types its methods reach; the whole file
// is read once to make it and then dropped. Any surprise in the file's shape (another version of
// the package) leaves the client with the file as shipped.
import { readFileSync } from 'node:fs';
import { createRequire, Module } from 'node:module';

const require = createRequire(import.meta.url);

/** The service the provider calls. */
export const INSTANCES_SERVICE = 'google.cloud.compute.v1.Instances';

const SCALARS = new Set(['double', 'float', 'int32', 'int64', 'uint32', 'uint64', 'sint32', 'sint64', 'fixed32', 'fixed64', 'sfixed32', 'sfixed64', 'bool', 'string', 'bytes']);

/** A namespace, message, enum or service of protobufjs's JSON form. */
interface ProtoNode {
  nested?: Record<string, ProtoNode>;
  fields?: Record<string, { type: string; keyType?: string }>;
  methods?: Record<string, { requestType: string; responseType: string }>;
  [key: string]: unknown;
}

function child(node: ProtoNode | undefined, name: string): ProtoNode | undefined {
  return node?.nested !== undefined && Object.hasOwn(node.nested, name) ? node.nested[name] : undefined;
}

function at(root: ProtoNode, path: readonly string[]): ProtoNode | undefined {
  let node: ProtoNode | undefined = root;
  for (const part of path) node = child(node, part);
  return node;
}

/** The full path of type `name` as protobufjs resolves it from inside `scope`: from the innermost scope outwards. */
function resolve(root: ProtoNode, scope: readonly string[], name: string): string[] | undefined {
  const parts = name.replace(/^\./, '').split('.');
  if (name.startsWith('.')) return at(root, parts) ? parts : undefined;
  for (let depth = scope.length; depth >= 0; depth--) {
    const path = [...scope.slice(0, depth), ...parts];
    if (at(root, path)) return path;
  }
  return undefined;
}

/**
 * protobufjs JSON holding the service `serviceName` and every type its methods reach, each kept
 * whole with what it nests, under the namespaces they were in (with their options). Throws when
 * the service or a type it names cannot be found.
 */
export function protosForService(root: ProtoNode, serviceName: string): ProtoNode {
  const servicePath = serviceName.split('.');
  const service = at(root, servicePath);
  if (!service?.methods) throw new Error(`no service ${serviceName} in the protos`);
  const kept = new Map<string, string[]>([[servicePath.join('.'), servicePath]]);
  const queue: Array<{ scope: string[]; name: string }> = [];
  for (const method of Object.values(service.methods)) {
    queue.push({ scope: servicePath.slice(0, -1), name: method.requestType }, { scope: servicePath.slice(0, -1), name: method.responseType });
  }
  // Fields of a type and of the types it nests are resolved from inside that type.
  const visit = (node: ProtoNode, path: string[]) => {
    for (const field of Object.values(node.fields ?? {})) {
      if (!SCALARS.has(field.type)) queue.push({ scope: path, name: field.type });
    }
    for (const [name, nested] of Object.entries(node.nested ?? {})) visit(nested, [...path, name]);
  };
  while (queue.length > 0) {
    const { scope, name } = queue.pop()!;
    const path = resolve(root, scope, name);
    if (!path) throw new Error(`type ${name} (from ${scope.join('.')}) is not in the protos`);
    // A type nested in a message is kept with the message.
    let top = path.length;
    while (top > 1 && at(root, path.slice(0, top - 1))?.fields !== undefined) top--;
    const keep = path.slice(0, top);
    const key = keep.join('.');
    if (kept.has(key)) continue;
    kept.set(key, keep);
    visit(at(root, keep)!, keep);
  }
  const out: ProtoNode = {};
  for (const path of kept.values()) {
    let from: ProtoNode = root;
    let to: ProtoNode = out;
    for (const [i, part] of path.entries()) {
      from = child(from, part)!;
      to.nested ??= {};
      if (i === path.length - 1) {
        to.nested[part] = from;
      } else {
        // A namespace on the way: its options (the package's) without its other types.
        to.nested[part] ??= { ...(from.options === undefined ? {} : { options: from.options }) };
        to = to.nested[part];
      }
    }
  }
  return out;
}

/**
 * The InstancesClient class, its module loaded with the trimmed protos in the place of the shipped
 * file (once per thread; later calls get the same class). The trimmed file stands in for the
 * shipped one in this thread's module cache: any other Compute client loaded in the same thread
 * would find its own service missing, so the GCP provider loads none.
 */
export function loadInstancesClient(): typeof import('@google-cloud/compute/build/src/v1/instances_client.js').InstancesClient {
  const file = require.resolve('@google-cloud/compute/build/protos/protos.json');
  if (require.cache[file] === undefined) {
    try {
      const trimmed = protosForService(JSON.parse(readFileSync(file, 'utf8')) as ProtoNode, INSTANCES_SERVICE);
      const module = new Module(file);
      module.filename = file;
      module.loaded = true;
      module.exports = trimmed;
      require.cache[file] = module;
    } catch {
      // Another shape than expected: the client loads the file itself, as shipped.
    }
  }
  return (require('@google-cloud/compute/build/src/v1/instances_client.js') as typeof import('@google-cloud/compute/build/src/v1/instances_client.js')).InstancesClient;
}
