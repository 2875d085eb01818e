/**
 * A typed client for the otpgate API.
 *
 * `schema.d.ts` is generated from `openapi/openapi.json` by openapi-typescript
 * (`npm run generate`; CI fails when it is stale), every call goes through
 * openapi-fetch with those types, and {@link OtpgateClient} keeps the tokens:
 * the pending token between the password and the code, the access token in
 * memory (refreshed shortly before it expires), the refresh and device tokens
 * in the storage it is given (an SPA passes `localStorage`). Every error
 * answer becomes an {@link OtpgateError} carrying the problem document's
 * `code`, `detail` and field `errors`.
 */
import createClient, { type Client } from "openapi-fetch";

import type { components, paths } from "./schema";

export type { components, paths } from "./schema";

type Schemas = components["schemas"];
export type User = Schemas["User"];
export type Problem = Schemas["Problem"];
export type FieldProblem = Schemas["FieldProblem"];
export type RegisterResponse = Schemas["RegisterResponse"];
export type PendingTokenResponse = Schemas["PendingTokenResponse"];
export type SetupResponse = Schemas["SetupResponse"];
export type TokenResponse = Schemas["TokenResponse"];
export type SecurityEvent = Schemas["SecurityEvent"];
export type SessionInfo = Schemas["SessionInfo"];
export type AuthenticatorSummary = Schemas["AuthenticatorSummary"];
export type AuthenticatorsResponse = Schemas["AuthenticatorsResponse"];
export type NewAuthenticatorResponse = Schemas["NewAuthenticatorResponse"];
export type LogoutScope = NonNullable<
  NonNullable<paths["/api/v1/auth/logout"]["post"]["parameters"]["query"]>["scope"]
>;

/** An error answer of the API (an RFC 9457 problem document), or a
 * non-problem failure such as a 502 from a proxy (`code` `"http_error"`). */
export class OtpgateError extends Error {
  readonly status: number;
  /** The problem's stable, machine-readable `code` (`invalid_otp`, ...). */
  readonly code: string;
  /** The problem's human-readable `detail`, fit to show to the user. */
  readonly detail: string;
  /** One entry per invalid field (only on `validation_failed`). */
  readonly errors: FieldProblem[];
  /** Seconds to wait, from `Retry-After` (on 429). */
  readonly retryAfter: number | undefined;

  constructor(status: number, problem: Partial<Problem>, retryAfter?: number) {
    const detail = problem.detail ?? `HTTP ${status}`;
    super(detail);
    this.name = "OtpgateError";
    this.status = status;
    this.code = problem.code ?? "http_error";
    this.detail = detail;
    this.errors = problem.errors ?? [];
    this.retryAfter = retryAfter;
  }

  /** The message for one field, if the API named it. */
  fieldError(field: string): string | undefined {
    return this.errors.find((error) => error.field === field)?.message;
  }
}

/** Where the long-lived tokens are kept: `localStorage`, `sessionStorage`,
 * or {@link memoryStorage}. */
export type TokenStorage = Pick<Storage, "getItem" | "setItem" | "removeItem">;

/** A {@link TokenStorage} that forgets everything with the process. */
export function memoryStorage(): TokenStorage {
  const items = new Map<string, string>();
  return {
    getItem: (key) => items.get(key) ?? null,
    setItem: (key, value) => void items.set(key, value),
    removeItem: (key) => void items.delete(key),
  };
}

export interface OtpgateClientOptions {
  /** The server's origin, e.g. `http://127.0.0.1:8080` (no `/api/v1`). */
  baseUrl: string;
  /** Keeps the refresh and device tokens; in memory if absent. */
  storage?: TokenStorage;
  /** Refresh the access token when it has fewer seconds left than this. */
  refreshMarginSeconds?: number;
  /** A `fetch` of your own (tests, instrumentation). */
  fetch?: typeof fetch;
}

const REFRESH_TOKEN_KEY = "otpgate.refresh_token";
const DEVICE_TOKEN_KEY = "otpgate.device_token";

type Answer<T> = { data?: T; error?: unknown; response: Response };

/** The API through its generated types, keeping the tokens between calls. */
export class OtpgateClient {
  /** The raw openapi-fetch client, for calls this wrapper has no method for. */
  readonly api: Client<paths>;
  private readonly storage: TokenStorage;
  private readonly refreshMarginMs: number;
  private pendingToken: string | null = null;
  private accessToken: string | null = null;
  private accessExpiresAt = 0;
  /** The refresh in flight: concurrent callers share it, since presenting a
   * rotated refresh token twice would revoke the session (reuse detection). */
  private refreshing: Promise<void> | null = null;

  constructor(options: OtpgateClientOptions) {
    this.api = createClient<paths>({ baseUrl: options.baseUrl, fetch: options.fetch });
    this.storage = options.storage ?? memoryStorage();
    this.refreshMarginMs = (options.refreshMarginSeconds ?? 30) * 1000;
  }

  /** True while a refresh token is kept: the session can be resumed. */
  get hasSession(): boolean {
    return this.storage.getItem(REFRESH_TOKEN_KEY) !== null;
  }

  // --- the sign-in flow ---------------------------------------------------

  async register(username: string, password: string): Promise<RegisterResponse> {
    const answer = await unwrap(
      this.api.POST("/api/v1/auth/register", { body: { username, password } }),
    );
    this.pendingToken = answer.pending_token;
    return answer;
  }

  /** The password step; sends this device's token when one is kept. */
  async login(username: string, password: string): Promise<PendingTokenResponse> {
    const device_token = this.storage.getItem(DEVICE_TOKEN_KEY);
    const answer = await unwrap(
      this.api.POST("/api/v1/auth/login", { body: { username, password, device_token } }),
    );
    this.pendingToken = answer.pending_token;
    return answer;
  }

  /** The secret and QR code to enrol (same secret until verified). */
  async setup(): Promise<SetupResponse> {
    return unwrap(this.api.POST("/api/v1/2fa/setup", { headers: this.pendingHeaders() }));
  }

  /** The code step: opens the session. The first verification's answer
   * carries the recovery codes, to show once. */
  async verify(code: string): Promise<TokenResponse> {
    const answer = await unwrap(
      this.api.POST("/api/v1/2fa/verify", { headers: this.pendingHeaders(), body: { code } }),
    );
    this.startSession(answer);
    return answer;
  }

  /** The code step with a recovery code instead (the code is spent). */
  async recover(recoveryCode: string): Promise<TokenResponse> {
    const answer = await unwrap(
      this.api.POST("/api/v1/2fa/recover", {
        headers: this.pendingHeaders(),
        body: { recovery_code: recoveryCode },
      }),
    );
    this.startSession(answer);
    return answer;
  }

  /** Swaps the kept refresh token for new tokens. A refused refresh token
   * ends the session here too. */
  refresh(): Promise<void> {
    this.refreshing ??= this.refreshOnce().finally(() => {
      this.refreshing = null;
    });
    return this.refreshing;
  }

  /** Ends this session (`local`), the others, or all; this client forgets
   * its session unless the scope is `others`. */
  async logout(scope: LogoutScope = "local"): Promise<void> {
    try {
      await unwrap(
        this.api.POST("/api/v1/auth/logout", {
          headers: await this.accessHeaders(),
          params: { query: { scope } },
        }),
      );
    } finally {
      if (scope !== "others") this.forgetSession();
    }
  }

  // --- the signed-in user -------------------------------------------------

  async me(): Promise<User> {
    return this.authed((headers) => this.api.GET("/api/v1/me", { headers }));
  }

  async events(): Promise<SecurityEvent[]> {
    const answer = await this.authed((headers) => this.api.GET("/api/v1/me/events", { headers }));
    return answer.events;
  }

  async sessions(): Promise<SessionInfo[]> {
    const answer = await this.authed((headers) =>
      this.api.GET("/api/v1/me/sessions", { headers }),
    );
    return answer.sessions;
  }

  async revokeSession(id: string): Promise<void> {
    await this.authed((headers) =>
      this.api.DELETE("/api/v1/me/sessions/{id}", { headers, params: { path: { id } } }),
    );
  }

  async changePassword(currentPassword: string, newPassword: string, code: string): Promise<void> {
    await this.authed((headers) =>
      this.api.POST("/api/v1/me/password", {
        headers,
        body: { current_password: currentPassword, new_password: newPassword, code },
      }),
    );
  }

  /** Erases the account; this client forgets its session. */
  async deleteAccount(password: string, code: string): Promise<void> {
    await this.authed((headers) =>
      this.api.POST("/api/v1/me/delete", { headers, body: { password, code } }),
    );
    this.forgetSession();
    this.storage.removeItem(DEVICE_TOKEN_KEY);
  }

  async regenerateRecoveryCodes(code: string): Promise<string[]> {
    const answer = await this.authed((headers) =>
      this.api.POST("/api/v1/2fa/recovery-codes", { headers, body: { code } }),
    );
    return answer.recovery_codes;
  }

  /** Turns 2FA off; every session ends, this one included. */
  async disableTwoFactor(password: string, code: string): Promise<void> {
    await this.authed((headers) =>
      this.api.POST("/api/v1/2fa/disable", { headers, body: { password, code } }),
    );
    this.forgetSession();
  }

  async authenticators(): Promise<AuthenticatorsResponse> {
    return this.authed((headers) => this.api.GET("/api/v1/2fa/authenticators", { headers }));
  }

  /** Starts enrolling another authenticator; `code` is from one already
   * enrolled. Confirm it with a code of the new one. */
  async addAuthenticator(name: string, code: string): Promise<NewAuthenticatorResponse> {
    return this.authed((headers) =>
      this.api.POST("/api/v1/2fa/authenticators", { headers, body: { name, code } }),
    );
  }

  async confirmAuthenticator(id: string, code: string): Promise<AuthenticatorSummary> {
    return this.authed((headers) =>
      this.api.POST("/api/v1/2fa/authenticators/{id}/confirm", {
        headers,
        params: { path: { id } },
        body: { code },
      }),
    );
  }

  async removeAuthenticator(id: string, code: string): Promise<void> {
    await this.authed((headers) =>
      this.api.POST("/api/v1/2fa/authenticators/{id}/remove", {
        headers,
        params: { path: { id } },
        body: { code },
      }),
    );
  }

  // --- tokens -------------------------------------------------------------

  private pendingHeaders(): Record<string, string> {
    if (this.pendingToken === null) {
      throw new OtpgateError(401, {
        code: "invalid_token",
        detail: "Sign in with your password first.",
      });
    }
    return { Authorization: `Bearer ${this.pendingToken}` };
  }

  /** A bearer header with an access token that is not about to expire. */
  private async accessHeaders(): Promise<Record<string, string>> {
    if (this.accessToken === null || Date.now() > this.accessExpiresAt - this.refreshMarginMs) {
      await this.refresh();
    }
    return { Authorization: `Bearer ${this.accessToken}` };
  }

  /** An access-token call; a refused token (session revoked elsewhere) ends
   * the session here too. */
  private async authed<T>(call: (headers: Record<string, string>) => Promise<Answer<T>>): Promise<T> {
    try {
      return await unwrap(call(await this.accessHeaders()));
    } catch (error) {
      if (error instanceof OtpgateError && error.code === "invalid_token") this.forgetSession();
      throw error;
    }
  }

  private async refreshOnce(): Promise<void> {
    const refresh_token = this.storage.getItem(REFRESH_TOKEN_KEY);
    if (refresh_token === null) {
      throw new OtpgateError(401, { code: "invalid_token", detail: "You are not signed in." });
    }
    try {
      this.keepTokens(
        await unwrap(this.api.POST("/api/v1/auth/refresh", { body: { refresh_token } })),
      );
    } catch (error) {
      if (error instanceof OtpgateError && error.status === 401) this.forgetSession();
      throw error;
    }
  }

  private startSession(answer: TokenResponse): void {
    this.pendingToken = null;
    this.keepTokens(answer);
    if (answer.device_token !== undefined) {
      this.storage.setItem(DEVICE_TOKEN_KEY, answer.device_token);
    }
  }

  private keepTokens(answer: TokenResponse): void {
    this.accessToken = answer.access_token;
    this.accessExpiresAt = Date.now() + answer.expires_in * 1000;
    this.storage.setItem(REFRESH_TOKEN_KEY, answer.refresh_token);
  }

  /** Forgets the session's tokens; the device token stays (it outlives
   * sessions by design). */
  private forgetSession(): void {
    this.accessToken = null;
    this.accessExpiresAt = 0;
    this.storage.removeItem(REFRESH_TOKEN_KEY);
  }
}

/** The answer's data, or an {@link OtpgateError} for an error answer. */
async function unwrap<T>(request: Promise<Answer<T>>): Promise<T> {
  const { data, error, response } = await request;
  if (response.ok) return data as T;
  const retryAfter = response.headers.get("Retry-After");
  const problem = isProblem(error) ? error : {};
  throw new OtpgateError(
    response.status,
    problem,
    retryAfter === null ? undefined : Number(retryAfter),
  );
}

function isProblem(value: unknown): value is Partial<Problem> {
  return typeof value === "object" && value !== null && "code" in value;
}
