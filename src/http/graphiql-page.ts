// GraphiQL for /graphql with nothing fetched from elsewhere. yoga's default page loads its scripts
// from a public CDN and stays at "Loading..." without internet; @graphql-yoga/render-graphiql
// (released with yoga) inlines the whole bundle: scripts, styles, fonts, favicon and editor workers.
import type { GraphiQLOptions } from "graphql-yoga";

/**
 * yoga's `renderGraphiQL`. The page is about 9 MB and takes ~70 ms to build, so each distinct set
 * of options is built once; the bundle is loaded on the first request, never where GraphiQL is off.
 */
export function offlineGraphiQL(): (options: GraphiQLOptions) => Promise<string> {
  const pages = new Map<string, Promise<string>>();
  return (options) => {
    const key = JSON.stringify(options);
    let page = pages.get(key);
    if (!page) {
      page = import("@graphql-yoga/render-graphiql").then(({ renderGraphiQL }) => renderGraphiQL(options));
      pages.set(key, page);
    }
    return page;
  };
}
