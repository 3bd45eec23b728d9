// Counts what the fake API server's watch stream reports per object name: a creation shows as one
// ADDED event whatever verb made it (create, or an apply to an absent object), so a name seen ADDED
// twice was created twice, even when the request records have rotated out.
import http from 'node:http';

/** A running watch of one resource in all namespaces. */
export interface CreationCounter {
  /** ADDED events per `namespace/name`. */
  added: Map<string, number>;
  /** DELETED events per `namespace/name`. */
  deleted: Map<string, number>;
  /** Stops the watch. */
  close(): void;
}

/** Watches a resource in all namespaces from now on; resolves once the server answered, so no later change is missed. */
export function countCreations(baseUrl: string, apiPath = '/apis/networking.istio.io/v1/workloadentries'): Promise<CreationCounter> {
  const added = new Map<string, number>();
  const deleted = new Map<string, number>();
  return new Promise((resolve, reject) => {
    const req = http.get(`${baseUrl}${apiPath}?watch=1`, (res) => {
      if (res.statusCode !== 200) {
        reject(new Error(`watch answered ${res.statusCode}`));
        res.resume();
        return;
      }
      let buffered = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        buffered += chunk;
        let newline = buffered.indexOf('\n');
        while (newline >= 0) {
          const line = buffered.slice(0, newline);
          buffered = buffered.slice(newline + 1);
          newline = buffered.indexOf('\n');
          if (line.trim() === '') continue;
          const event = JSON.parse(line) as { type: string; object: { metadata?: { namespace?: string; name?: string } } };
          const key = `${event.object.metadata?.namespace ?? ''}/${event.object.metadata?.name ?? ''}`;
          const into = event.type === 'ADDED' ? added : event.type === 'DELETED' ? deleted : undefined;
          into?.set(key, (into.get(key) ?? 0) + 1);
        }
      });
      res.on('error', () => {});
      resolve({ added, deleted, close: () => req.destroy() });
    });
    // After close() the aborted request reports an error too; by then the promise is settled.
    req.on('error', reject);
  });
}
