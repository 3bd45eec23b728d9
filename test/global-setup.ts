// Runs once before the suite: the integration tests use a real Redis, so say how to get one
// instead of letting dozens of tests time out one by one.
import net from 'node:net';

const REDIS_HELP = `Redis is not reachable at 127.0.0.1:6379 (or $REDIS_URL). The tests use a real Redis.
Start one with:
  redis-server --daemonize yes --bind 127.0.0.1 -::1 --port 6379 --save "" --appendonly no
or on Debian:  apt-get install -y redis-server
or with Docker: docker run -d -p 6379:6379 redis:7`;

function ping(host: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host, port });
    socket.setTimeout(2000);
    socket.once('connect', () => socket.write('PING\r\n'));
    socket.once('data', (data) => {
      socket.destroy();
      resolve(data.toString().startsWith('+PONG'));
    });
    socket.once('timeout', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => resolve(false));
  });
}

export default async function setup(): Promise<void> {
  const url = new URL(process.env.REDIS_URL ?? 'redis://127.0.0.1:6379');
  const ok = await ping(url.hostname, Number(url.port || 6379));
  if (!ok) throw new Error(REDIS_HELP);
}
