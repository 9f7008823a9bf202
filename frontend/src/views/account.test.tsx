import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { describe, expect, it } from "vitest";
import type { UserRow } from "../api/types";
import { ok, problem, setup, useFakeBrowser } from "../testing";
import { serverUrl } from "./SettingsView";
import { withAdmin } from "./UsersView";

useFakeBrowser();

const creds = (n: number, accountPassword = true) => ({
  username: "ana",
  password: `app-password-${n}`,
  api_key: `api-key-${n}`,
  updated_at: n,
  path: "/rest",
  account_password: accountPassword,
});

const body = (init: RequestInit) => JSON.parse(String(init.body)) as unknown;

describe("settings", () => {
  it("shows the Subsonic credentials with copy buttons, and replaces them", async () => {
    window.history.replaceState(null, "", "/settings");
    let n = 1;
    const { calls } = setup((url, init) => {
      if (url.pathname === "/api/me/subsonic") return ok(creds(n));
      if (url.pathname === "/api/me/subsonic/rotate" && init.method === "POST") {
        n += 1;
        return ok(creds(n));
      }
      return undefined;
    });
    const user = userEvent.setup(); // (with a clipboard of its own)
    const url = await screen.findByLabelText("Server URL");
    expect((url as HTMLInputElement).value).toBe(window.location.origin);
    const password = screen.getByLabelText("App password") as HTMLInputElement;
    expect(password.value).toBe("app-password-1");
    expect(password.type).toBe("password"); // shown on request
    await user.click(screen.getByRole("button", { name: "Show app password" }));
    expect(password.type).toBe("text");

    await user.click(screen.getByRole("button", { name: "Copy app password" }));
    expect(await navigator.clipboard.readText()).toBe("app-password-1");
    await user.click(screen.getByRole("button", { name: "Copy API key" }));
    expect(await navigator.clipboard.readText()).toBe("api-key-1");
    await user.click(screen.getByRole("button", { name: "Copy server URL" }));
    expect(await navigator.clipboard.readText()).toBe(window.location.origin);
    await user.click(screen.getByRole("button", { name: "Copy username" }));
    expect(await navigator.clipboard.readText()).toBe("ana");
    expect(screen.getAllByText("Copied").length).toBeGreaterThan(0);

    expect(screen.getByRole("heading", { name: "Setting up an app" })).toBeTruthy();
    await user.click(screen.getByRole("button", { name: "New app password and API key" }));
    await user.click(screen.getByRole("button", { name: "Replace them" }));
    await waitFor(() => expect(password.value).toBe("app-password-2"));
    expect((screen.getByLabelText("API key") as HTMLInputElement).value).toBe("api-key-2");
    expect(calls.filter((c) => c.url.pathname === "/api/me/subsonic/rotate")).toHaveLength(1);
  });

  it("says whether apps take the account password, and lets admins require app passwords", async () => {
    window.history.replaceState(null, "", "/settings");
    let allowed = true;
    const { calls } = setup(
      (url, init) => {
        if (url.pathname === "/api/me/subsonic") return ok(creds(1, allowed));
        if (url.pathname === "/api/settings") {
          if (init.method === "PATCH")
            allowed = (body(init) as { subsonic_account_password: boolean })
              .subsonic_account_password;
          return ok({ subsonic_account_password: allowed });
        }
        return undefined;
      },
      { admin: true },
    );
    const user = userEvent.setup();
    expect(await screen.findByText(/the password you sign in here with/)).toBeTruthy();
    const toggle = await screen.findByRole("checkbox", {
      name: "Subsonic apps may sign in with account passwords",
    });
    expect((toggle as HTMLInputElement).checked).toBe(true);
    await user.click(toggle);
    await waitFor(() => expect((toggle as HTMLInputElement).checked).toBe(false));
    const patch = calls.find(
      (c) => c.url.pathname === "/api/settings" && c.init.method === "PATCH",
    );
    expect(body(patch!.init)).toEqual({ subsonic_account_password: false });
    expect(await screen.findByText(/Apps must now use app passwords/)).toBeTruthy();
  });

  it("tells users when only the app password works, and hides the switch from them", async () => {
    window.history.replaceState(null, "", "/settings");
    setup((url) => (url.pathname === "/api/me/subsonic" ? ok(creds(1, false)) : undefined));
    expect(await screen.findByText(/your sign-in password does not work in them/)).toBeTruthy();
    expect(screen.queryByRole("checkbox")).toBeNull();
  });

  it("gives the server URL without a trailing slash, under a base path", () => {
    expect(serverUrl("", "https://music.example")).toBe("https://music.example");
    expect(serverUrl("/dspot/", "https://music.example")).toBe("https://music.example/dspot");
  });

  it("changes the password, and says so when the server cannot yet", async () => {
    window.history.replaceState(null, "", "/settings");
    let offered = false;
    const { calls } = setup((url, init) => {
      if (url.pathname === "/api/me/subsonic") return ok(creds(1));
      if (url.pathname === "/api/me/password" && init.method === "POST")
        return offered ? new Response(null, { status: 204 }) : problem(404, "no such route");
      return undefined;
    });
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText("Current password"), "old secret");
    await user.type(screen.getByLabelText("New password"), "new secret");
    await user.type(screen.getByLabelText("New password again"), "new secret");
    await user.click(screen.getByRole("button", { name: "Change password" }));
    expect((await screen.findByRole("alert")).textContent).toMatch(/cannot change passwords yet/);
    const sent = calls.find((c) => c.url.pathname === "/api/me/password")!;
    expect(body(sent.init)).toEqual({ old: "old secret", new: "new secret" });

    offered = true;
    await user.click(screen.getByRole("button", { name: "Change password" }));
    // Every token of the user is revoked: back to signing in, with a word why.
    expect(await screen.findByRole("heading", { name: "Sign in" })).toBeTruthy();
    expect(screen.getByRole("status").textContent).toMatch(/Password changed/);
  });

  it("refuses new passwords that differ", async () => {
    window.history.replaceState(null, "", "/settings");
    const { calls } = setup((url) =>
      url.pathname === "/api/me/subsonic" ? ok(creds(1)) : undefined,
    );
    const user = userEvent.setup();
    await user.type(await screen.findByLabelText("Current password"), "a");
    await user.type(screen.getByLabelText("New password"), "b");
    await user.type(screen.getByLabelText("New password again"), "c");
    await user.click(screen.getByRole("button", { name: "Change password" }));
    expect((await screen.findByRole("alert")).textContent).toBe("The new passwords differ.");
    expect(calls.some((c) => c.url.pathname === "/api/me/password")).toBe(false);
  });
});

describe("user management", () => {
  const users: UserRow[] = [
    { id: "u1", username: "ana", roles: ["admin"], disabled: false, created_at: 1 },
    { id: "u2", username: "bob", roles: ["user"], disabled: false, created_at: 2 },
  ];

  it("says clearly that the server does not offer it yet", async () => {
    window.history.replaceState(null, "", "/users");
    setup((url) => (url.pathname === "/api/users" ? problem(404, "no such route") : undefined), {
      admin: true,
    });
    expect(await screen.findByText(/not available on this server yet/)).toBeTruthy();
    expect(screen.queryByText(/Something went wrong/)).toBeNull();
  });

  it("is for admins only", async () => {
    window.history.replaceState(null, "", "/users");
    const { calls } = setup(() => undefined);
    expect(await screen.findByText("Only admins manage users.")).toBeTruthy();
    expect(calls.some((c) => c.url.pathname === "/api/users")).toBe(false);
  });

  it("lists users; changes roles, disables and resets a password through the contract", async () => {
    window.history.replaceState(null, "", "/users");
    const { calls } = setup(
      (url, init) => {
        if (url.pathname === "/api/users") return ok({ users });
        if (url.pathname === "/api/users/u2" && init.method === "PATCH") {
          const change = body(init) as Partial<UserRow>;
          return ok({ ...users[1], ...change });
        }
        if (url.pathname === "/api/users/u2/password" && init.method === "POST")
          return new Response(null, { status: 204 });
        return undefined;
      },
      { admin: true },
    );
    const table = await screen.findByRole("table", { name: "Users" });
    const bob = within(table).getByRole("row", { name: /^bob/ });
    const ana = within(table).getByRole("row", { name: /^ana/ });
    expect(ana.textContent).toContain("admin");
    // Not on one's own account: no locking oneself out.
    expect(
      (within(ana).getByRole("button", { name: "Disable ana" }) as HTMLButtonElement).disabled,
    ).toBe(true);

    const user = userEvent.setup();
    await user.click(within(bob).getByRole("button", { name: "Make bob an admin" }));
    await within(bob).findByRole("button", { name: "Remove admin role from bob" });
    await user.click(within(bob).getByRole("button", { name: "Disable bob" }));
    await waitFor(() => expect(bob.textContent).toContain("disabled"));
    await user.click(within(bob).getByRole("button", { name: "Reset the password of bob" }));
    await user.type(within(bob).getByLabelText("New password for bob"), "fresh one");
    await user.click(within(bob).getByRole("button", { name: "Set" }));
    expect(await screen.findByText("New password set for bob.")).toBeTruthy();

    const sent = calls
      .filter((c) => c.url.pathname.startsWith("/api/users/u2"))
      .map((c) => [c.init.method, c.url.pathname, body(c.init)]);
    expect(sent).toEqual([
      ["PATCH", "/api/users/u2", { roles: ["user", "admin"] }],
      ["PATCH", "/api/users/u2", { disabled: true }],
      ["POST", "/api/users/u2/password", { password: "fresh one" }],
    ]);
  });

  it("adds and removes the admin role without losing others or leaving none", () => {
    expect(withAdmin(["user"], true)).toEqual(["user", "admin"]);
    expect(withAdmin(["admin"], false)).toEqual(["user"]);
    expect(withAdmin(["user", "admin"], false)).toEqual(["user"]);
  });
});
