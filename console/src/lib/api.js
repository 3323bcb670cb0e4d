// The API client: the envelope, the access token kept in memory only, and the refresh token
// left to the HttpOnly cookie that sign-in sets (docs/console.md "Security"). Every call that
// the pages make goes through `api`, so tests/web/console/test_api_paths.py can find each path.

let accessToken = null;
let refreshTimer = null;
const listeners = new Set();

export class ApiError extends Error {
  constructor(status, body) {
    super(body?.message || `Request failed (HTTP ${status})`);
    this.status = status;
    this.errors = body?.errors || [];
  }
  get detail() {
    return this.errors.length ? `${this.message}: ${this.errors.join("; ")}` : this.message;
  }
}

export const session = {
  get token() { return accessToken; },
  onChange(fn) { listeners.add(fn); return () => listeners.delete(fn); },
};

function setToken(token, expiresIn) {
  accessToken = token;
  clearTimeout(refreshTimer);
  // Renew a minute before expiry (or at 80% of a short lifetime).
  if (token) refreshTimer = setTimeout(renew, Math.max(10, Math.min(expiresIn - 60, expiresIn * 0.8)) * 1000);
  listeners.forEach((fn) => fn(token));
}

// A date-time field's value ("2026-12-03T10:00", local-looking, no zone) is the UTC time its label
// names: the API takes RFC 3339 with an offset only, so the zone is written out.
const LOCAL_DATETIME = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2})?$/;
const queryValue = (v) => (LOCAL_DATETIME.test(v) ? `${v.length === 16 ? `${v}:00` : v}Z` : v);

async function send(method, path, { body, query, headers } = {}) {
  const url = new URL(path, location.origin);
  for (const [k, v] of Object.entries(query || {})) {
    if (v !== "" && v !== null && v !== undefined) url.searchParams.set(k, queryValue(v));
  }
  const init = { method, credentials: "same-origin", headers: { Accept: "application/json", ...headers } };
  if (accessToken) init.headers.Authorization = `Bearer ${accessToken}`;
  if (body !== undefined) {
    init.headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(url, init);
  } catch {
    throw new ApiError(0, { message: "The server cannot be reached" });
  }
  let json = null;
  try { json = await resp.json(); } catch { /* not JSON: the status speaks */ }
  return { resp, json };
}

async function call(method, path, opts) {
  let { resp, json } = await send(method, path, opts);
  // An expired access token: renew once through the cookie and try again.
  if (resp.status === 401 && accessToken && !path.startsWith("/api/auth/")) {
    if (await renew()) ({ resp, json } = await send(method, path, opts));
  }
  if (!resp.ok || !json || json.success === false) throw new ApiError(resp.status, json);
  return json;
}

export const api = {
  get: (path, query) => call("GET", path, { query }),
  post: (path, body = {}, headers) => call("POST", path, { body, headers }),
  put: (path, body = {}) => call("PUT", path, { body }),
  del: (path) => call("DELETE", path),
};

// A new access token from the refresh cookie; false when there is no (valid) session.
export async function renew() {
  const { resp, json } = await send("POST", "/api/auth/refresh", { body: {} });
  if (!resp.ok || !json?.data?.accessToken) {
    setToken(null);
    return false;
  }
  setToken(json.data.accessToken, json.data.expiresIn);
  return true;
}

export async function signIn(email, password) {
  const json = await call("POST", "/api/auth/login", { body: { email, password } });
  // The body's refreshToken is dropped: the HttpOnly cookie carries the session.
  setToken(json.data.accessToken, json.data.expiresIn);
  return json.data.user;
}

export async function signOut() {
  try {
    await call("POST", "/api/auth/logout", { body: {} });
  } finally {
    setToken(null);
  }
}

export async function me() {
  return (await api.get("/api/auth/me")).data;
}

// An Idempotency-Key made by the page: one per intended action, reused on a retry of it.
export function idempotencyKey() {
  return crypto.randomUUID();
}
