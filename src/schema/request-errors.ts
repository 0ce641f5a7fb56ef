// What a client sees of an error that is not an AppError: decided here, for the server's maskError
// and two yoga hooks. Every error leaves with `extensions.code`; with introspection off (production)
// no message suggests a schema name.
import { GraphQLError } from "graphql";
import type { Plugin } from "graphql-yoga";
import { badRequest, errorCodes, type AppError } from "./errors.js";

/** graphql-js' "Did you mean ...?" for fields, arguments, types, enum values and input fields. */
const SCHEMA_HINT = /\s*Did you mean [^?]*\?/g;

export const withoutSchemaHints = (message: string) => message.replace(SCHEMA_HINT, "");

/** An AppError at the place in the response where `error` happened. */
export const locatedAt = (error: unknown, replacement: AppError) =>
  new GraphQLError(replacement.message, {
    nodes: error instanceof GraphQLError ? error.nodes : undefined,
    path: error instanceof GraphQLError ? error.path : undefined,
    extensions: replacement.extensions,
  });

/** graphql-js words a variable it could not coerce as `Variable "$i" got invalid value ... at "i.name"; ...`. */
function variablePath(message: string): string | null {
  const name = /^Variable "\$(\w+)"/.exec(message)?.[1];
  if (!name) return null;
  const at = new RegExp(` at "(${name}[\\w.[\\]]*)"; `).exec(message)?.[1];
  return `$${at ?? name}`;
}

/**
 * The error as the client should see it, with a code; null for a bug, which the caller masks.
 * Meant for the client: AppErrors, yoga's and GraphQL's own request errors (parse, validation,
 * variable coercion, operation selection) and Pothos' paging checks. A bug: anything a resolver
 * threw that is not a GraphQLError, and a code-less GraphQLError raised during execution (a
 * scalar that cannot serialize, the Prisma plugin's unused-query check).
 */
export function clientError(error: unknown, options: { hideSchemaHints: boolean }): GraphQLError | null {
  if (!(error instanceof GraphQLError)) return null;
  const original = error.originalError;
  if (original && !(original instanceof GraphQLError)) return null;
  if (error.extensions.code) return error;
  const pothosValidation = original?.name === "PothosValidationError";
  if (error.path && !pothosValidation) return null;
  // Completed in place: yoga logs, as a server error, every error that masking replaces, and
  // these are the client's.
  const variable = variablePath(error.message);
  if (options.hideSchemaHints) error.message = withoutSchemaHints(error.message);
  const code = variable || pothosValidation ? "VALIDATION" : "BAD_REQUEST";
  Object.assign(error.extensions, { code, http: { status: errorCodes[code] } }, variable ? { fields: [{ field: variable, message: error.message }] } : {});
  return error;
}

/** Validation errors (over HTTP, SSE and WebSocket alike) without "Did you mean ...". */
export function useNoSchemaHints(): Plugin {
  return {
    onValidate: () => ({ result }) => {
      // These error objects may be the validation cache's: rewriting them again changes nothing.
      for (const error of result) error.message = withoutSchemaHints(error.message);
    },
  };
}

/**
 * yoga parses the `variables` and `extensions` of a GET (or a form POST) with a bare JSON.parse:
 * malformed ones threw a SyntaxError, which was masked as a bug. They are the client's mistake.
 */
export function useMalformedParamsAsBadRequest(): Plugin {
  return {
    onRequestParse({ requestParser, setRequestParser }) {
      if (!requestParser) return;
      setRequestParser(async (request) => {
        try {
          return await requestParser(request);
        } catch (error) {
          if (error instanceof SyntaxError) throw badRequest(`The variables and extensions parameters must be JSON: ${error.message}`);
          throw error;
        }
      });
    },
  };
}
