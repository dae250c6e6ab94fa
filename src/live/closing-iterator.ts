/**
 * `iterator`, with `onClose` run exactly once when it ends: finished, failed, or returned early by its consumer —
 * even before its first `next`, when a generator's own `finally` would never run (a subscription the client
 * cancels before its first event, or one the transport drops unstarted).
 */
export function closing<T>(iterator: AsyncIterator<T>, onClose: () => void): AsyncIterableIterator<T> {
  let closed = false;
  const close = () => {
    if (closed) return;
    closed = true;
    onClose();
  };
  const settle = async (step: Promise<IteratorResult<T>>): Promise<IteratorResult<T>> => {
    try {
      const result = await step;
      if (result.done) close();
      return result;
    } catch (error) {
      close();
      throw error;
    }
  };
  return {
    next: () => settle(iterator.next()),
    return: (value?: unknown) => {
      close();
      return iterator.return ? iterator.return(value) : Promise.resolve({ done: true, value: undefined as T });
    },
    throw: (error?: unknown) => {
      close();
      return iterator.throw ? iterator.throw(error) : Promise.reject(error);
    },
    [Symbol.asyncIterator]() {
      return this;
    },
  };
}
