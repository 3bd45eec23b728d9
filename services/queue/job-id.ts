// BullMQ builds Redis key names from job, deduplication and scheduler ids, separated by ':'. Entry
// keys, scope keys and instance references can hold ':', so every id made of them goes through here.

/** `text` without ':' ('%' escaped first, so that two different texts stay two different ids). */
export function idPart(text: string): string {
  return text.replaceAll('%', '%25').replaceAll(':', '%3A');
}
