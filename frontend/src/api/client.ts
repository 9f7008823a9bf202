// The HTTP client of the app: bearer auth, RFC 9457 problem errors, read-your-writes through
// X-Log-Position, and uploads with progress (XMLHttpRequest, since fetch cannot report upload
// progress).
import type { Session, Song } from "./types";

export const NO_QUORUM = "read-only: no quorum";
export const LOG_POSITION_HEADER = "X-Log-Position";
/** Start of the 503 detail of a read that waited in vain for the position it was sent. */
export const UNREACHED_POSITION = "this replica has not reached log position";
const SESSION_KEY = "dspot.session";
const POSITION_KEY = "dspot.logPosition";

/** A failed request, built from the server's problem document when it sent one. */
export class ApiError extends Error {
  readonly status: number;
  readonly title: string;
  readonly detail: string;
  readonly type: string;

  constructor(status: number, title: string, detail: string, type = "about:blank") {
    super(detail || title || `HTTP ${status}`);
    this.name = "ApiError";
    this.status = status;
    this.title = title;
    this.detail = detail;
    this.type = type;
  }

  /** True when the write was refused because this side of the cluster has no quorum. */
  get readOnly(): boolean {
    return this.status === 503 && this.detail === NO_QUORUM;
  }
}

/** What a failure says to the user: an API error's detail, anything else as text. */
export function errorText(e: unknown): string {
  return e instanceof ApiError ? e.detail : String(e);
}

/** Any failure as an ApiError (one that is not, such as a network failure: status 0). */
export function asApiError(e: unknown): ApiError {
  return e instanceof ApiError ? e : new ApiError(0, "Error", String(e));
}

/** Turn a response body (problem JSON, other JSON, text) into an ApiError. */
export function problemError(status: number, statusText: string, body: string): ApiError {
  try {
    const doc: unknown = JSON.parse(body);
    if (doc && typeof doc === "object") {
      const d = doc as Record<string, unknown>;
      const title = typeof d.title === "string" ? d.title : statusText;
      const detail = typeof d.detail === "string" ? d.detail : title;
      const type = typeof d.type === "string" ? d.type : "about:blank";
      return new ApiError(status, title, detail, type);
    }
  } catch {
    // not JSON: fall through
  }
  const text = body.trim().slice(0, 200);
  return new ApiError(status, statusText, text || statusText || `HTTP ${status}`);
}

/** Parse "<epoch>.<seq>"; null when malformed. */
export function parsePosition(text: string | null | undefined): [number, number] | null {
  const m = /^(\d+)\.(\d+)$/.exec((text ?? "").trim());
  return m ? [Number(m[1]), Number(m[2])] : null;
}

/** The later of two log positions (either may be null). */
export function laterPosition(a: string | null, b: string | null): string | null {
  const pa = parsePosition(a);
  const pb = parsePosition(b);
  if (!pb) return pa ? a : null;
  if (!pa) return b;
  return pb[0] > pa[0] || (pb[0] === pa[0] && pb[1] > pa[1]) ? b : a;
}

export type ClientEvent =
  { kind: "session"; session: Session | null } | { kind: "readOnly"; readOnly: boolean };

type Query = Record<string, string | number | undefined | null>;

export interface RequestOptions {
  query?: Query;
  body?: unknown;
  signal?: AbortSignal;
  /** Set on the one retry after forgetting an unreachable log position. */
  retried?: boolean;
}

export interface UploadResult {
  status: number;
  song: Song;
}

export interface UploadHandle {
  promise: Promise<UploadResult>;
  abort: () => void;
}

export interface ClientOptions {
  base?: string;
  fetch?: typeof fetch;
  storage?: Pick<Storage, "getItem" | "setItem" | "removeItem"> | null;
  xhr?: () => XMLHttpRequest;
}

export function queryString(query: Query | undefined): string {
  if (!query) return "";
  const params = new URLSearchParams();
  for (const [k, v] of Object.entries(query)) {
    if (v !== undefined && v !== null && v !== "") params.set(k, String(v));
  }
  const s = params.toString();
  return s ? `?${s}` : "";
}

export class ApiClient {
  readonly base: string;
  private readonly fetchImpl: typeof fetch;
  private readonly storage: ClientOptions["storage"];
  private readonly makeXhr: () => XMLHttpRequest;
  private listeners = new Set<(e: ClientEvent) => void>();
  session: Session | null = null;
  logPosition: string | null = null;

  constructor(options: ClientOptions = {}) {
    this.base = options.base ?? "";
    this.fetchImpl = options.fetch ?? ((input, init) => globalThis.fetch(input, init));
    this.storage = options.storage === undefined ? globalThis.localStorage : options.storage;
    this.makeXhr = options.xhr ?? (() => new XMLHttpRequest());
    try {
      const saved = this.storage?.getItem(SESSION_KEY);
      if (saved) this.session = JSON.parse(saved) as Session;
      const position = this.storage?.getItem(POSITION_KEY) ?? null;
      this.logPosition = parsePosition(position) ? position : null;
    } catch {
      this.session = null;
    }
  }

  get token(): string | null {
    return this.session?.token ?? null;
  }

  subscribe(listener: (e: ClientEvent) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emit(e: ClientEvent): void {
    for (const l of [...this.listeners]) l(e);
  }

  setSession(session: Session | null): void {
    this.session = session;
    if (session) this.storage?.setItem(SESSION_KEY, JSON.stringify(session));
    else this.storage?.removeItem(SESSION_KEY);
    this.emit({ kind: "session", session });
  }

  /** Remember the log position of a write so later reads wait for it (read your writes). */
  notePosition(position: string | null): void {
    if (!parsePosition(position)) return;
    const later = laterPosition(this.logPosition, position);
    if (later !== this.logPosition) {
      this.logPosition = later;
      if (later) this.storage?.setItem(POSITION_KEY, later);
    }
  }

  forgetPosition(): void {
    this.logPosition = null;
    this.storage?.removeItem(POSITION_KEY);
  }

  headers(extra: Record<string, string> = {}): Record<string, string> {
    const h: Record<string, string> = { Accept: "application/json", ...extra };
    if (this.token) h.Authorization = `Bearer ${this.token}`;
    if (this.logPosition) h[LOG_POSITION_HEADER] = this.logPosition;
    return h;
  }

  /** One API call; resolves to the parsed JSON body (undefined for 204). */
  async request<T>(method: string, path: string, options: RequestOptions = {}): Promise<T> {
    const extra: Record<string, string> = {};
    let body: BodyInit | undefined;
    if (options.body !== undefined) {
      extra["Content-Type"] = "application/json";
      body = JSON.stringify(options.body);
    }
    const authenticated = this.token !== null;
    let response: Response;
    try {
      response = await this.fetchImpl(this.base + path + queryString(options.query), {
        method,
        headers: this.headers(extra),
        body,
        signal: options.signal,
      });
    } catch (e) {
      if (e instanceof DOMException && e.name === "AbortError") throw e;
      throw new ApiError(0, "Network error", "the server cannot be reached");
    }
    const write = method !== "GET" && method !== "HEAD";
    if (write) this.notePosition(response.headers.get(LOG_POSITION_HEADER));
    const text = response.status === 204 ? "" : await response.text();
    if (!response.ok) {
      const error = problemError(response.status, response.statusText, text);
      if (
        error.status === 503 &&
        error.detail.startsWith(UNREACHED_POSITION) &&
        this.logPosition &&
        !options.retried
      ) {
        // A position this cluster never reached (say, remembered from a cluster since wiped):
        // waiting longer will not help. Forget it and ask once more.
        this.forgetPosition();
        return this.request<T>(method, path, { ...options, retried: true });
      }
      if (error.readOnly) this.emit({ kind: "readOnly", readOnly: true });
      if (response.status === 401 && authenticated) this.setSession(null);
      throw error;
    }
    if (write) this.emit({ kind: "readOnly", readOnly: false });
    if (!text) return undefined as T;
    return JSON.parse(text) as T;
  }

  get<T>(path: string, query?: Query, signal?: AbortSignal): Promise<T> {
    return this.request<T>("GET", path, { query, signal });
  }

  post<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>("POST", path, { body });
  }

  put<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>("PUT", path, { body });
  }

  patch<T>(path: string, body?: unknown): Promise<T> {
    return this.request<T>("PATCH", path, { body });
  }

  delete<T>(path: string): Promise<T> {
    return this.request<T>("DELETE", path);
  }

  async login(username: string, password: string): Promise<Session> {
    const s = await this.post<Session>("/api/auth/login", { username, password });
    this.setSession(s);
    return s;
  }

  async register(username: string, password: string): Promise<Session> {
    const s = await this.post<Session>("/api/auth/register", { username, password });
    this.setSession(s);
    return s;
  }

  logout(): void {
    this.setSession(null);
    this.forgetPosition();
  }

  /** URL of a song's audio or cover for elements that cannot send headers. */
  mediaUrl(songId: string, kind: "stream" | "cover"): string {
    const token = encodeURIComponent(this.token ?? "");
    return `${this.base}/api/songs/${encodeURIComponent(songId)}/${kind}?token=${token}`;
  }

  /** WebSocket URL of the live cluster events. */
  eventsUrl(location: { protocol: string; host: string } = window.location): string {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    const token = encodeURIComponent(this.token ?? "");
    return `${scheme}//${location.host}${this.base}/api/events?token=${token}`;
  }

  /** Upload one file as the raw request body, reporting progress (bytes sent, total). */
  upload(
    file: Blob & { name?: string },
    onProgress: (loaded: number, total: number) => void,
  ): UploadHandle {
    const xhr = this.makeXhr();
    const promise = new Promise<UploadResult>((resolve, reject) => {
      const name = file.name ?? "upload";
      xhr.open("POST", `${this.base}/api/songs${queryString({ filename: name })}`);
      for (const [k, v] of Object.entries(
        this.headers({ "Content-Type": file.type || "application/octet-stream" }),
      )) {
        xhr.setRequestHeader(k, v);
      }
      xhr.upload.onprogress = (e: ProgressEvent) => {
        onProgress(e.loaded, e.lengthComputable ? e.total : file.size);
      };
      xhr.onload = () => {
        const text = xhr.responseText ?? "";
        if (xhr.status >= 200 && xhr.status < 300) {
          this.notePosition(xhr.getResponseHeader(LOG_POSITION_HEADER));
          this.emit({ kind: "readOnly", readOnly: false });
          try {
            resolve({ status: xhr.status, song: JSON.parse(text) as Song });
          } catch {
            reject(new ApiError(xhr.status, "Bad response", "the server's answer is not JSON"));
          }
          return;
        }
        const error = problemError(xhr.status, xhr.statusText, text);
        if (error.readOnly) this.emit({ kind: "readOnly", readOnly: true });
        reject(error);
      };
      xhr.onerror = () => reject(new ApiError(0, "Network error", "the upload was interrupted"));
      xhr.onabort = () => reject(new ApiError(0, "Cancelled", "the upload was cancelled"));
      xhr.send(file);
    });
    return { promise, abort: () => xhr.abort() };
  }
}

// -- Accounts, users, Subsonic ------------------------------------------------------------------
// (An import may stand here: ES imports are hoisted; kept in this block so it merges cleanly.)
import type { SubsonicPlayQueue } from "./subsonic";
import type {
  Me,
  ServerSettings,
  SubsonicCredentials,
  UserList,
  UserPatch,
  UserRow,
} from "./types";

/** True when the server does not offer the endpoint (an older server): 404, 405 or 501. */
export function isMissingEndpoint(e: unknown): boolean {
  return e instanceof ApiError && (e.status === 404 || e.status === 405 || e.status === 501);
}

export function getMe(api: ApiClient, signal?: AbortSignal): Promise<Me> {
  return api.get<Me>("/api/me", undefined, signal);
}

/** Whether `me` may administer the cluster ("admin" in `roles`; `role` says the same). */
export function isAdmin(me: Partial<Pick<Me, "role" | "roles">> | null | undefined): boolean {
  return !!me && (me.role === "admin" || !!me.roles?.includes("admin"));
}

/** Sign out: revoke the token on the server (when it can, waiting at most `waitMs`), then
 * forget it here anyway. */
export async function signOut(api: ApiClient, waitMs = 3000): Promise<void> {
  const ctl = new AbortController();
  const timer = setTimeout(() => ctl.abort(), waitMs);
  try {
    if (api.token) await api.request("POST", "/api/auth/logout", { signal: ctl.signal });
  } catch {
    // Not offered yet, already expired, or unreachable: signing out here is what matters.
  } finally {
    clearTimeout(timer);
    api.logout();
  }
}

export function changeMyPassword(api: ApiClient, old: string, password: string): Promise<void> {
  return api.post<void>("/api/me/password", { old, new: password });
}

export function getSubsonicCredentials(
  api: ApiClient,
  signal?: AbortSignal,
): Promise<SubsonicCredentials> {
  return api.get<SubsonicCredentials>("/api/me/subsonic", undefined, signal);
}

export function rotateSubsonicCredentials(api: ApiClient): Promise<SubsonicCredentials> {
  return api.post<SubsonicCredentials>("/api/me/subsonic/rotate");
}

export function listUsers(api: ApiClient, signal?: AbortSignal): Promise<UserList> {
  return api.get<UserList>("/api/users", undefined, signal);
}

export function updateUser(api: ApiClient, id: string, patch: UserPatch): Promise<UserRow> {
  return api.patch<UserRow>(`/api/users/${encodeURIComponent(id)}`, patch);
}

export function resetUserPassword(api: ApiClient, id: string, password: string): Promise<void> {
  return api.post<void>(`/api/users/${encodeURIComponent(id)}/password`, { password });
}

export function getSettings(api: ApiClient, signal?: AbortSignal): Promise<ServerSettings> {
  return api.get<ServerSettings>("/api/settings", undefined, signal);
}

export function changeSettings(
  api: ApiClient,
  change: Partial<ServerSettings>,
): Promise<ServerSettings> {
  return api.patch<ServerSettings>("/api/settings", change);
}

/** A Subsonic call answered `status="failed"` (code 0: generic, e.g. "not implemented"). */
export class SubsonicFailure extends Error {
  readonly code: number;

  constructor(code: number, message: string) {
    super(message);
    this.name = "SubsonicFailure";
    this.code = code;
  }
}

export const SUBSONIC_CLIENT = "dspot-web";
const SUBSONIC_VERSION = "1.16.1";

/**
 * One Subsonic call in its JSON form, authenticated with an OpenSubsonic API key. Sent as a
 * POST with the parameters in the URL (names may repeat); resolves to the content of
 * `subsonic-response`, rejects with SubsonicFailure when it says `failed`.
 */
export async function subsonicCall(
  api: ApiClient,
  apiKey: string,
  endpoint: string,
  params: [string, string][] = [],
): Promise<Record<string, unknown>> {
  const query = new URLSearchParams([
    ["v", SUBSONIC_VERSION],
    ["c", SUBSONIC_CLIENT],
    ["f", "json"],
    ["apiKey", apiKey],
    ...params,
  ]);
  const doc = await api.request<Record<string, unknown> | undefined>(
    "POST",
    `/rest/${endpoint}?${query.toString()}`,
  );
  const body = doc?.["subsonic-response"] as Record<string, unknown> | undefined;
  if (!body || typeof body !== "object") {
    throw new SubsonicFailure(0, `no subsonic-response from ${endpoint}`);
  }
  if (body.status !== "ok") {
    const error = (body.error ?? {}) as { code?: unknown; message?: unknown };
    throw new SubsonicFailure(
      typeof error.code === "number" ? error.code : 0,
      typeof error.message === "string" ? error.message : `${endpoint} failed`,
    );
  }
  return body;
}

/** The user's saved play queue (`getPlayQueue`), or null when none is saved. */
export async function getPlayQueue(
  api: ApiClient,
  apiKey: string,
): Promise<SubsonicPlayQueue | null> {
  const body = await subsonicCall(api, apiKey, "getPlayQueue");
  const queue = body.playQueue as SubsonicPlayQueue | undefined;
  return queue && typeof queue === "object" ? queue : null;
}

/** Save the play queue (`savePlayQueue`): the songs in order, the current one and where in it
 * (milliseconds). No ids clears the saved queue, as the specification says. */
export async function savePlayQueue(
  api: ApiClient,
  apiKey: string,
  ids: string[],
  current: string | null,
  positionMs: number,
): Promise<void> {
  const params: [string, string][] = ids.map((id) => ["id", id]);
  if (current && ids.length) {
    params.push(["current", current], ["position", String(Math.max(0, Math.round(positionMs)))]);
  }
  await subsonicCall(api, apiKey, "savePlayQueue", params);
}
