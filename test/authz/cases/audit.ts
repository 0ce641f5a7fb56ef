// The audit log: workspace admins and owners; reading it is a read, so the owner's read-only key may.
import { admin, type MatrixCase } from "../world.js";

export const cases: MatrixCase[] = [
  {
    field: "Query.auditLog",
    request: (w) => ({
      query: "query($ws: ID!) { auditLog(workspaceId: $ws, first: 5, filter: { actionPrefix: \"workspace.\" }) { totalCount edges { node { id action } } } }",
      variables: { ws: w.workspaceId },
    }),
    expect: { ...admin, readKey: "ok" },
  },
];
