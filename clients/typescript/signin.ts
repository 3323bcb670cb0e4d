// Sign-in typed by the types generated from the served document (generated/api.ts, built by
// tests/system/test_generated_clients.py and never committed). If the document changes the
// call's shape, this stops compiling.
import type { components, operations } from "./generated/api";

type LoginBody = components["schemas"]["LoginBody"];
type SignedIn = operations["authLogin"]["responses"][200]["content"]["application/json"];
type Refused = components["schemas"]["ErrorEnvelope"];
type Session = components["schemas"]["SessionOut"];

export async function signIn(baseUrl: string, body: LoginBody): Promise<Session> {
  const response = await fetch(`${baseUrl}/api/auth/login`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify(body),
  });
  if (!response.ok) {
    const refused = (await response.json()) as Refused;
    throw new Error(`${refused.code ?? response.status}: ${refused.message}`);
  }
  const signedIn = (await response.json()) as SignedIn;
  const session: Session = signedIn.data;
  const bearer: string = `Bearer ${session.accessToken}`;
  const role: "user" | "admin" = session.user.role;
  void bearer;
  void role;
  return session;
}

// The types are real, not `any`: each line below must be refused by the compiler.
// @ts-expect-error a login without its password
export const missingPassword: LoginBody = { email: "ada@example.com" };
// @ts-expect-error a role outside the document's enum
export const unknownRole: Session["user"]["role"] = "owner";
