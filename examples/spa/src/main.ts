/**
 * The reference SPA: every screen of the otpgate flow on the typed client.
 * No framework: each screen is a function that renders into `#app` with the
 * small `h` helper below (text always goes in as text, never as HTML).
 */
import { OtpgateClient, OtpgateError, type SetupResponse } from "otpgate-client";

const API_ORIGIN: string = import.meta.env.VITE_OTPGATE_API ?? "http://127.0.0.1:8080";
const client = new OtpgateClient({ baseUrl: API_ORIGIN, storage: localStorage });
const app = document.querySelector<HTMLElement>("#app")!;

type Child = Node | string | null | undefined | false;
type Attributes = Record<string, string | boolean | ((event: Event) => void)>;

function h(tag: string, attributes: Attributes = {}, ...children: Child[]): HTMLElement {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes)) {
    if (typeof value === "function") element.addEventListener(name.slice(2), value);
    else if (value === true) element.setAttribute(name, "");
    else if (value !== false) element.setAttribute(name, value);
  }
  for (const child of children) {
    if (child) element.append(child);
  }
  return element;
}

function show(title: string, ...content: Child[]): void {
  document.title = `${title} · otpgate example`;
  app.replaceChildren(h("h1", {}, title));
  for (const child of content) if (child) app.append(child);
  app.querySelector<HTMLElement>("input, button")?.focus();
}

let fieldCount = 0;

/** A labelled input with a slot for its field error, tied by aria-describedby
 * (ids numbered: the signed-in page has several code fields). */
function field(label: string, name: string, attributes: Attributes): HTMLElement {
  const id = `field-${name}-${++fieldCount}`;
  return h(
    "div",
    {},
    h("label", { for: id }, label),
    h("input", { id, name, required: true, "aria-describedby": `${id}-error`, ...attributes }),
    h("div", { id: `${id}-error`, class: "field-error" }),
  );
}

const codeField = (label = "6-digit code", name = "code") =>
  field(label, name, {
    autocomplete: "one-time-code",
    inputmode: "numeric",
    pattern: "[0-9]{6}",
    maxlength: "6",
  });

/** A form whose submit calls `action` with its values and shows the API's
 * `detail` and field `errors` when it fails. */
function form(submitLabel: string, action: (values: Record<string, string>) => Promise<void>, ...fields: HTMLElement[]): HTMLFormElement {
  const alert = h("div", { role: "alert", class: "error" });
  const element = h("form", { novalidate: true }, ...fields, alert, h("button", { type: "submit" }, submitLabel)) as HTMLFormElement;
  element.addEventListener("submit", async (event) => {
    event.preventDefault();
    const values = Object.fromEntries(new FormData(element)) as Record<string, string>;
    alert.textContent = "";
    for (const input of element.querySelectorAll("input")) {
      input.removeAttribute("aria-invalid");
      element.querySelector(`#${input.id}-error`)!.textContent = "";
    }
    const button = element.querySelector("button[type=submit]") as HTMLButtonElement;
    button.disabled = true;
    try {
      await action(values);
    } catch (error) {
      showError(element, alert, error);
    } finally {
      button.disabled = false;
    }
  });
  return element;
}

function showError(container: HTMLElement, alert: HTMLElement, error: unknown): void {
  if (!(error instanceof OtpgateError)) {
    alert.textContent = "The server cannot be reached.";
    return;
  }
  alert.textContent = error.detail;
  for (const { field, message } of error.errors) {
    const input = container.querySelector<HTMLInputElement>(`input[name="${field}"]`);
    if (input === null) {
      alert.append(h("div", {}, `${field}: ${message}`));
      continue;
    }
    input.setAttribute("aria-invalid", "true");
    container.querySelector(`#${input.id}-error`)!.textContent = message;
  }
}

/** A button whose failure is shown in `alert`. */
function actionButton(label: string, alert: HTMLElement, action: () => Promise<void>): HTMLElement {
  return h("button", {
    type: "button",
    onclick: () => {
      alert.textContent = "";
      action().catch((error) => showError(app, alert, error));
    },
  }, label);
}

const linkButton = (label: string, onclick: () => void) => h("button", { type: "button", class: "link", onclick }, label);

// --- screens ---------------------------------------------------------------

function registerScreen(): void {
  show(
    "Create an account",
    form(
      "Create account",
      async ({ username, password }) => {
        await client.register(username, password);
        await enrolScreen();
      },
      field("Username", "username", { autocomplete: "username" }),
      field("Password", "password", { type: "password", autocomplete: "new-password" }),
    ),
    h("p", {}, "Already have an account? ", linkButton("Sign in", () => signInScreen())),
  );
}

function signInScreen(notice?: string): void {
  show(
    "Sign in",
    notice && h("p", { class: "notice", role: "status" }, notice),
    form(
      "Continue",
      async ({ username, password }) => {
        const answer = await client.login(username, password);
        if (answer.next_step === "setup_2fa") await enrolScreen();
        else codeScreen();
      },
      field("Username", "username", { autocomplete: "username" }),
      field("Password", "password", { type: "password", autocomplete: "current-password" }),
    ),
    h("p", {}, "New here? ", linkButton("Create an account", registerScreen)),
  );
}

function codeScreen(): void {
  show(
    "Enter your code",
    h("p", {}, "Open your authenticator app and type the code it shows."),
    form("Verify", async ({ code }) => signedIn(await client.verify(code)), codeField()),
    h("p", {}, linkButton("Use a recovery code instead", recoveryScreen)),
  );
}

function recoveryScreen(): void {
  show(
    "Use a recovery code",
    h("p", {}, "Each recovery code works once."),
    form(
      "Sign in",
      async ({ recovery_code }) => signedIn(await client.recover(recovery_code)),
      field("Recovery code", "recovery_code", { autocomplete: "off", autocapitalize: "none", spellcheck: "false" }),
    ),
    h("p", {}, linkButton("Use a code from your app", codeScreen)),
  );
}

/** The QR code and the secret with a copy button. */
function enrolment(setup: SetupResponse): HTMLElement {
  const copied = h("span", { role: "status" });
  return h(
    "div",
    {},
    h("img", { src: setup.qr_data_uri, alt: `QR code for ${setup.account_name}`, width: "200", height: "200" }),
    h("p", {}, "Can't scan it? Enter this key in your app:"),
    h(
      "p",
      { class: "row" },
      h("code", { id: "secret" }, setup.secret),
      h("button", {
        type: "button",
        onclick: () => {
          navigator.clipboard.writeText(setup.secret).then(
            () => (copied.textContent = "Copied."),
            () => (copied.textContent = "Copy failed: select the key instead."),
          );
        },
      }, "Copy key"),
      copied,
    ),
  );
}

async function enrolScreen(): Promise<void> {
  const setup = await client.setup();
  show(
    "Set up two-factor authentication",
    h("p", {}, "Scan the QR code with your authenticator app, then enter the code it shows."),
    enrolment(setup),
    form("Turn on two-factor authentication", async ({ code }) => signedIn(await client.verify(code)), codeField()),
  );
}

function signedIn(answer: { recovery_codes?: string[] }): Promise<void> | void {
  if (answer.recovery_codes) recoveryCodesScreen(answer.recovery_codes);
  else return homeScreen();
}

function recoveryCodesScreen(codes: string[]): void {
  const download = () => {
    const file = new Blob([codes.join("\n") + "\n"], { type: "text/plain" });
    const link = h("a", { href: URL.createObjectURL(file), download: "otpgate-recovery-codes.txt" });
    link.click();
    URL.revokeObjectURL(link.getAttribute("href")!);
  };
  show(
    "Your recovery codes",
    h("p", {}, "If you lose your phone, each of these codes signs you in once. They are shown only now: download or write them down."),
    h("ul", { class: "codes", id: "recovery-codes" }, ...codes.map((code) => h("li", {}, code))),
    h("p", { class: "row" }, h("button", { type: "button", onclick: download }, "Download codes"), h("button", { type: "button", onclick: () => void homeScreen() }, "I have saved them")),
  );
}

async function homeScreen(): Promise<void> {
  const [user, events, sessions, authenticators] = await Promise.all([
    client.me(),
    client.events(),
    client.sessions(),
    client.authenticators(),
  ]);
  const alert = h("div", { role: "alert", class: "error" });
  const table = (headings: string[], rows: Child[][]) =>
    h("table", {}, h("thead", {}, h("tr", {}, ...headings.map((text) => h("th", { scope: "col" }, text)))), h("tbody", {}, ...rows.map((cells) => h("tr", {}, ...cells.map((cell) => h("td", {}, cell))))));
  const when = (at: string | null | undefined) => (at ? new Date(at).toLocaleString() : "");
  show(
    `Welcome, ${user.username}`,
    alert,
    h("p", { class: "row" },
      actionButton("Sign out this device", alert, async () => {
        await client.logout("local");
        signInScreen("You are signed out.");
      }),
      actionButton("Sign out everywhere else", alert, async () => {
        await client.logout("others");
        await homeScreen();
      }),
    ),
    h("section", { "aria-labelledby": "sessions-heading" },
      h("h2", { id: "sessions-heading" }, "Where you are signed in"),
      table(["Signed in", "Last used", "Address", "Browser", ""], sessions.map((session) => [
        when(session.created_at), when(session.last_used_at), session.ip ?? "", session.user_agent ?? "", session.current ? "this device" : "",
      ])),
    ),
    h("section", { "aria-labelledby": "authenticators-heading" },
      h("h2", { id: "authenticators-heading" }, "Authenticators"),
      h("p", {}, `${authenticators.recovery_codes_left} recovery codes left.`),
      table(["Name", "Added", "Last used", ""], authenticators.authenticators.map((authenticator) => [
        authenticator.name, when(authenticator.created_at), when(authenticator.last_used_at),
        authenticators.authenticators.length > 1 &&
          form(`Remove ${authenticator.name}`, async ({ code }) => {
            await client.removeAuthenticator(authenticator.id, code);
            await homeScreen();
          }, codeField(`Code to remove ${authenticator.name}`, "code")),
      ])),
      h("h3", {}, "Add an authenticator"),
      form("Add", async ({ name, code }) => addAuthenticatorScreen(await client.addAuthenticator(name, code)),
        field("Name (e.g. spare phone)", "name", { autocomplete: "off" }),
        codeField("Code from an authenticator you already have"),
      ),
    ),
    h("section", { "aria-labelledby": "events-heading" },
      h("h2", { id: "events-heading" }, "Security log"),
      table(["When", "What", "Address"], events.map((event) => [when(event.at), event.type, event.ip ?? ""])),
    ),
  );
}

function addAuthenticatorScreen(added: SetupResponse & { id: string; name: string }): void {
  show(
    `Add ${added.name}`,
    h("p", {}, "Scan the QR code with the new authenticator, then enter the code it shows."),
    enrolment(added),
    form("Confirm", async ({ code }) => {
      await client.confirmAuthenticator(added.id, code);
      await homeScreen();
    }, codeField()),
    h("p", {}, linkButton("Cancel", () => void homeScreen())),
  );
}

/** On load: resume the session with the kept refresh token, if any. */
async function start(): Promise<void> {
  if (!client.hasSession) return signInScreen();
  try {
    await homeScreen();
  } catch (error) {
    if (!(error instanceof OtpgateError)) throw error;
    signInScreen("Your session has ended: please sign in again.");
  }
}

start().catch(() => {
  app.replaceChildren(h("h1", {}, "Sign in"), h("p", { role: "alert", class: "error" }, `The server at ${API_ORIGIN} cannot be reached.`));
});
