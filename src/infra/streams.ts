// Helpers for live streams (subscription sources), written as plain iterators rather than async
// generators: a generator suspended in an `await` cannot be returned until that await settles, so
// a client leaving a quiet stream would leave its pub/sub listener behind until the next event.

type Done = IteratorReturnResult<undefined>;
const done: Done = { done: true, value: undefined };

/** Passes events through, and ends the stream right after the first one for which `isLast` holds. */
export function endAfter<T>(source: AsyncIterable<T>, isLast: (event: T) => boolean): AsyncIterableIterator<T> {
  const iterator = source[Symbol.asyncIterator]();
  let finished = false;
  return {
    [Symbol.asyncIterator]() {
      return this;
    },
    async next() {
      if (finished) return done;
      const result = await iterator.next();
      if (result.done) {
        finished = true;
      } else if (isLast(result.value)) {
        finished = true;
        void iterator.return?.();
      }
      return result;
    },
    async return() {
      finished = true;
      await iterator.return?.();
      return done;
    },
  };
}

/** Lets the server end every live stream at once on shutdown, so clients see a clean completion. */
export interface StreamCloser {
  wrap<T>(source: AsyncIterable<T>): AsyncIterableIterator<T>;
  closeAll(): void;
}

export function createStreamCloser(): StreamCloser {
  const open = new Set<() => void>();
  let closing = false;
  return {
    wrap<T>(source: AsyncIterable<T>) {
      const iterator = source[Symbol.asyncIterator]();
      let stop!: () => void;
      const stopped = new Promise<Done>((resolve) => {
        stop = () => resolve(done);
      });
      const release = () => {
        open.delete(stop);
        stop();
      };
      open.add(stop);
      if (closing) stop();
      return {
        [Symbol.asyncIterator]() {
          return this;
        },
        async next() {
          const result = await Promise.race([iterator.next(), stopped]);
          if (result.done) {
            release();
            // Not awaited: the source may be stuck waiting for an event that will not come.
            void iterator.return?.();
          }
          return result;
        },
        async return() {
          release();
          await iterator.return?.();
          return done;
        },
      };
    },
    closeAll() {
      closing = true;
      for (const stop of open) stop();
    },
  };
}
