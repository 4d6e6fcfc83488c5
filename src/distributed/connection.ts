import { Redis, type RedisOptions } from 'ioredis';
import { UserError } from '../util/errors.js';
import { type BrokerAddress, redactText } from './broker-url.js';

/**
 * One round trip to the broker before anything starts, failing fast with a one-line reason:
 * BullMQ's own connections retry forever (as they should once running), so an unreachable broker
 * or a wrong password would otherwise look like an idle queue.
 */
export async function checkBroker(address: BrokerAddress): Promise<void> {
  const client = new Redis({
    ...(address.connection as RedisOptions),
    lazyConnect: true,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
    connectTimeout: 10_000,
  });
  // The server's own reason (WRONGPASS, NOAUTH, ECONNREFUSED) arrives as an 'error' event; the
  // rejected call only says the connection closed.
  let reason: Error | null = null;
  client.on('error', (error: Error) => {
    reason ??= error;
  });
  try {
    await client.connect();
    await client.ping();
  } catch (error) {
    throw new UserError(
      `cannot reach the broker at ${address.display}: ${redactText((reason ?? (error as Error)).message.split('\n')[0]!, address)}`,
    );
  } finally {
    client.disconnect();
  }
}
