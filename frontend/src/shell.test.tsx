import { screen, waitFor, within } from "@testing-library/react";
import userEvent from "@testing-library/user-event";
import { readFileSync } from "node:fs";
import { describe, expect, it } from "vitest";
import type { Cluster, Member } from "./api/types";
import { navItems } from "./App";
import { cluster, ok, problem, setup, useFakeBrowser } from "./testing";

useFakeBrowser();

const links = (list: HTMLElement) =>
  within(list)
    .getAllByRole("link")
    .map((a) => a.textContent?.trim());

describe("navigation", () => {
  it("keeps the main views in the phone strip and the rest, with sign-out, in a menu", async () => {
    setup(() => undefined);
    const nav = await screen.findByRole("navigation", { name: "Main" });
    const primary = nav.querySelector(".nav-primary") as HTMLElement;
    expect(links(primary)).toEqual(["Albums", "Artists", "Songs", "Liked"]);
    const more = screen.getByRole("button", { name: "More" });
    expect(more.getAttribute("aria-expanded")).toBe("false");
    const menu = document.getElementById(more.getAttribute("aria-controls")!)!;
    expect(links(menu)).toEqual(["Playlists", "Upload", "Status", "Settings"]);
    expect(within(menu).getByRole("button", { name: "Sign out" })).toBeTruthy();

    const user = userEvent.setup();
    await user.click(more);
    expect(more.getAttribute("aria-expanded")).toBe("true");
    expect(nav.classList.contains("open")).toBe(true);
    await user.click(within(menu).getByRole("link", { name: "Upload" }));
    expect(window.location.pathname).toBe("/upload");
    expect(nav.classList.contains("open")).toBe(false); // going somewhere closes the menu
    await user.click(more);
    await user.keyboard("{Escape}");
    expect(more.getAttribute("aria-expanded")).toBe("false");
  });

  it("hides the menu's part of the navigation on a phone until it is opened", () => {
    // jsdom applies no style sheet: check the rules that make the strip fit 375 px.
    const css = readFileSync(`${__dirname}/styles.css`, "utf8");
    const phone = css.slice(css.indexOf("@media (max-width: 720px)"));
    const rule = (selector: string) => {
      const at = phone.indexOf(`\n  ${selector} {`);
      expect(at, selector).toBeGreaterThan(-1);
      return phone.slice(at, phone.indexOf("}", at));
    };
    expect(rule(".nav-more")).toContain("display: none");
    expect(rule(".sidebar.open .nav-more")).toContain("display: flex");
    expect(rule(".menu-button")).toContain("display: inline-flex");
    expect(rule(".nav-primary li")).toContain("min-width: 0");
    expect(rule(".sidebar")).not.toContain("overflow-x");
  });

  it("shows admins the cluster and user pages", async () => {
    setup(() => undefined, { admin: true });
    const nav = await screen.findByRole("navigation", { name: "Main" });
    await waitFor(() => expect(within(nav).getByRole("link", { name: "Users" })).toBeTruthy());
    expect(within(nav).getByRole("link", { name: "Cluster" })).toBeTruthy();
    expect(navItems(false).map((i) => i.to)).not.toContain("/users");
  });

  it("signs out on the server too, and here even when the server cannot", async () => {
    const { calls } = setup((url) =>
      url.pathname === "/api/auth/logout" ? problem(404, "no such route") : undefined,
    );
    const user = userEvent.setup();
    await user.click(await screen.findByRole("button", { name: "Sign out" }));
    expect(await screen.findByRole("heading", { name: "Sign in" })).toBeTruthy();
    const logout = calls.find((c) => c.url.pathname === "/api/auth/logout")!;
    expect(logout.init.method).toBe("POST");
    expect((logout.init.headers as Record<string, string>).Authorization).toBe("Bearer tok");
  });
});

describe("not found", () => {
  for (const [path, api, heading] of [
    ["/albums/nope", "/api/albums/nope", "Album not found"],
    ["/artists/nope", "/api/artists/nope", "Artist not found"],
  ]) {
    it(`shows a not-found page for an unknown ${heading.split(" ")[0].toLowerCase()}`, async () => {
      window.history.replaceState(null, "", path);
      setup((url) => (url.pathname === api ? problem(404, "no such thing") : undefined));
      expect(await screen.findByRole("heading", { name: heading })).toBeTruthy();
      expect(screen.queryByText(/Something went wrong/)).toBeNull();
      expect(screen.queryByRole("button", { name: "Try again" })).toBeNull();
    });
  }

  it("still offers a retry when the failure is not a 404", async () => {
    window.history.replaceState(null, "", "/albums/al1");
    setup((url) =>
      url.pathname === "/api/albums/al1" ? problem(503, "read-only: no quorum") : undefined,
    );
    expect(await screen.findByRole("button", { name: "Try again" })).toBeTruthy();
  });

  it("shows a not-found page for an unknown address", async () => {
    window.history.replaceState(null, "", "/no/such/page");
    setup(() => undefined);
    expect(await screen.findByRole("heading", { name: "Page not found" })).toBeTruthy();
  });
});

describe("the cluster page", () => {
  const member = (id: string, state: Member["state"]): Member => ({
    id,
    address: `10.0.0.${id.slice(1)}:7100`,
    http: `10.0.0.${id.slice(1)}:8080`,
    state,
    role: "voter",
    incarnation: 1,
    log_position: "1.1",
    blobs: 1,
    bytes: 1,
    loop_lag_worst_ms: 2,
    loop_lag_p99_ms: 1,
    orphaned_bytes: 0,
    restarts: null,
  });
  const threeNodes: Cluster = {
    ...cluster(true),
    ring: ["n1", "n2", "n3"],
    replication: 3,
    members: [member("n1", "alive"), member("n2", "alive"), member("n3", "dead")],
  };

  it("is a plain service status for users, without node names or addresses", async () => {
    window.history.replaceState(null, "", "/cluster");
    setup((url) => (url.pathname === "/api/cluster" ? ok(threeNodes) : undefined));
    expect(await screen.findByRole("heading", { name: "Service status" })).toBeTruthy();
    expect((await screen.findByTestId("service-level")).textContent).toBe("Degraded");
    const main = screen.getByRole("main");
    expect(main.textContent).toContain("2 of 3 servers up.");
    expect(main.textContent).not.toMatch(/10\.0\.0|n1|n2|n3/);
    expect(screen.queryByRole("table", { name: "Members" })).toBeNull();
  });

  it("is the dashboard, with addresses, for admins", async () => {
    window.history.replaceState(null, "", "/cluster");
    setup((url) => (url.pathname === "/api/cluster" ? ok(threeNodes) : undefined), {
      admin: true,
    });
    const members = await screen.findByRole("table", { name: "Members" });
    expect(members.textContent).toContain("10.0.0.3:8080");
    expect(screen.getByTestId("stat-below-r-detail").textContent).toBe("only 2 voters alive");
  });

  it("falls back to the health check when the server keeps the cluster to admins", async () => {
    window.history.replaceState(null, "", "/cluster");
    setup((url) => {
      if (url.pathname === "/api/cluster") return problem(403, "admins only");
      if (url.pathname === "/healthz") return ok({ status: "ok", nodes: 3 });
      return undefined;
    });
    expect((await screen.findByTestId("service-level")).textContent).toBe("Healthy");
  });
});
