// Request bodies, bounded: GraphQL over HTTP and the legacy REST layer read them the same way.
import type { IncomingMessage } from "node:http";

/** The largest request body the server reads (413 past it). */
export const MAX_BODY_BYTES = 1024 * 1024;

/**
 * A request's body, read up to `limit` bytes (also when it declared no length: chunked).
 * Null when it is longer: the rest is discarded, unread.
 */
export function readBodyUpTo(req: IncomingMessage, limit: number): Promise<Buffer | null> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const done = (result: Buffer | null) => {
      req.off("data", onData).off("end", onEnd).off("error", onError);
      resolve(result);
    };
    const onData = (chunk: Buffer) => {
      size += chunk.length;
      if (size > limit) {
        // Keep the stream flowing with nobody listening, so the rest is dropped as it comes.
        done(null);
        req.resume();
      } else {
        chunks.push(chunk);
      }
    };
    const onEnd = () => done(Buffer.concat(chunks));
    const onError = (error: Error) => {
      req.off("data", onData).off("end", onEnd).off("error", onError);
      reject(error);
    };
    req.on("data", onData).on("end", onEnd).on("error", onError);
  });
}

