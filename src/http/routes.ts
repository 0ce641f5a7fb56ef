// The HTTP server's table: which handler answers which path, each entry one line of the table
// (GraphQL, health, metrics, the API documents, the legacy REST layer), and which path a WebSocket
// upgrade may take. Entries are tried in order; a handler that answers `false` passes the request on.
import type { IncomingMessage, ServerResponse } from "node:http";
import type { Socket } from "node:net";

export interface HttpRoute {
  /** The metrics label of requests this entry answers. */
  name: string;
  /** Whether the entry is for this path: an exact path, or a function for a family of paths. */
  path: string | ((pathname: string) => boolean);
  /** Browser pages from foreign origins are refused (403) before the handler runs. */
  originChecked?: boolean;
  /** Answers the request; `false` when it is not this entry's after all. */
  handle(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<boolean | void>;
}

export interface UpgradeRoute {
  path: string;
  handle(req: IncomingMessage, socket: Socket, head: Buffer): void;
}

export interface HttpTable {
  /** The metrics label of a path (the first entry whose path matches it), or "other". */
  nameOf(pathname: string): string;
  /** Answers with the first entry that takes the request; false when none did. */
  dispatch(req: IncomingMessage, res: ServerResponse, requestId: string): Promise<boolean>;
  upgrade(req: IncomingMessage, socket: Socket, head: Buffer): void;
}

const matches = (route: HttpRoute, pathname: string) => (typeof route.path === "string" ? route.path === pathname : route.path(pathname));

export function createHttpTable(options: {
  routes: HttpRoute[];
  upgrades: UpgradeRoute[];
  /** The origin rule (same origin, or listed in SPINDLE_CORS_ORIGINS). */
  originAllowed(req: IncomingMessage): boolean;
  /** What a refused origin gets, in the shape of the entry's clients. */
  refuseOrigin(res: ServerResponse, route: HttpRoute, origin: string): void;
}): HttpTable {
  const pathOf = (req: IncomingMessage) => new URL(req.url ?? "/", "http://spindle.internal").pathname;
  return {
    nameOf(pathname) {
      return options.routes.find((route) => matches(route, pathname))?.name ?? "other";
    },
    async dispatch(req, res, requestId) {
      const pathname = pathOf(req);
      for (const route of options.routes) {
        if (!matches(route, pathname)) continue;
        if (route.originChecked && !options.originAllowed(req)) {
          options.refuseOrigin(res, route, String(req.headers.origin));
          return true;
        }
        if ((await route.handle(req, res, requestId)) !== false) return true;
      }
      return false;
    },
    upgrade(req, socket, head) {
      const pathname = pathOf(req);
      const route = options.upgrades.find((u) => u.path === pathname);
      const allowed = options.originAllowed(req);
      if (!route || !allowed) {
        socket.end(`HTTP/1.1 ${allowed ? "404 Not Found" : "403 Forbidden"}\r\nConnection: close\r\n\r\n`);
        return;
      }
      route.handle(req, socket, head);
    },
  };
}
