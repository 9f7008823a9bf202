// The app shell: sign-in gate, navigation (a sidebar; on a phone a strip with the main views
// and a "More" menu with the rest), the current view, the read-only banner and the player bar
// (which stays mounted, so music keeps playing across views).
import { useEffect, useState, type ReactElement } from "react";
import { signOut, type ApiClient } from "./api/client";
import { AppProvider, useApp } from "./app/context";
import { PlaylistsProvider } from "./app/playlists";
import { Link, matchPath, RouterProvider, useRouter } from "./app/router";
import { ClusterProvider } from "./cluster/ClusterProvider";
import { Icon } from "./components/Icon";
import { NotFound } from "./components/States";
import { PlayerBar, PlayerProvider } from "./player/Player";
import { AlbumsView } from "./views/AlbumsView";
import { AlbumView } from "./views/AlbumView";
import { ArtistsView, ArtistView } from "./views/ArtistsView";
import { DashboardView } from "./views/DashboardView";
import { LoginView } from "./views/LoginView";
import { PlaylistsView, PlaylistView } from "./views/PlaylistsView";
import { ServiceStatusView } from "./views/ServiceStatusView";
import { SettingsView } from "./views/SettingsView";
import { LikedView, SongsView } from "./views/SongsView";
import { UploadView } from "./views/UploadView";
import { UsersView } from "./views/UsersView";

interface NavItem {
  to: string;
  label: string;
  icon: string;
  /** Shown in the phone's top strip; the others are in its "More" menu. */
  primary?: boolean;
}

/** The destinations: the same for everyone, but the cluster page is a plain service status
 * for users who are not admins, and only admins manage users. */
export function navItems(admin: boolean): NavItem[] {
  const items: NavItem[] = [
    { to: "/", label: "Albums", icon: "album", primary: true },
    { to: "/artists", label: "Artists", icon: "artist", primary: true },
    { to: "/songs", label: "Songs", icon: "songs", primary: true },
    { to: "/likes", label: "Liked", icon: "heart-filled", primary: true },
    { to: "/playlists", label: "Playlists", icon: "playlist" },
    { to: "/upload", label: "Upload", icon: "upload" },
    { to: "/cluster", label: admin ? "Cluster" : "Status", icon: "cluster" },
    { to: "/settings", label: "Settings", icon: "settings" },
  ];
  if (admin) items.push({ to: "/users", label: "Users", icon: "users" });
  return items;
}

function CurrentView() {
  const { path } = useRouter();
  const { admin } = useApp();
  const routes: [string, (p: Record<string, string>) => ReactElement][] = [
    ["/", () => <AlbumsView />],
    ["/albums", () => <AlbumsView />],
    ["/albums/:id", (p) => <AlbumView id={p.id} />],
    ["/artists", () => <ArtistsView />],
    ["/artists/:id", (p) => <ArtistView id={p.id} />],
    ["/songs", () => <SongsView />],
    ["/likes", () => <LikedView />],
    ["/upload", () => <UploadView />],
    ["/playlists", () => <PlaylistsView />],
    ["/playlists/:id", (p) => <PlaylistView id={p.id} />],
    ["/cluster", () => (admin ? <DashboardView /> : <ServiceStatusView />)],
    ["/settings", () => <SettingsView />],
    ["/users", () => <UsersView />],
  ];
  for (const [pattern, render] of routes) {
    const params = matchPath(pattern, path);
    if (params) return render(params);
  }
  return <NotFound title="Page not found" />;
}

function NavLink({ item, path }: { item: NavItem; path: string }) {
  const active =
    item.to === "/" ? path === "/" || path.startsWith("/albums") : path.startsWith(item.to);
  return (
    <li>
      <Link to={item.to} className={active ? "active" : ""}>
        <Icon name={item.icon} /> <span>{item.label}</span>
      </Link>
    </li>
  );
}

function Navigation() {
  const { session, admin, api } = useApp();
  const { path } = useRouter();
  const [open, setOpen] = useState(false);
  useEffect(() => setOpen(false), [path]);
  useEffect(() => {
    if (!open) return;
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && setOpen(false);
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [open]);
  const items = navItems(admin);
  return (
    <nav className={`sidebar ${open ? "open" : ""}`} aria-label="Main">
      <div className="brand">
        <img src="/favicon.svg" alt="" width={28} height={28} /> <span>dspot</span>
      </div>
      <ul className="nav-primary">
        {items
          .filter((i) => i.primary)
          .map((i) => (
            <NavLink key={i.to} item={i} path={path} />
          ))}
      </ul>
      <button
        type="button"
        className="icon-button menu-button"
        aria-label="More"
        aria-expanded={open}
        aria-controls="nav-more"
        onClick={() => setOpen((o) => !o)}
      >
        <Icon name={open ? "close" : "menu"} />
      </button>
      <div id="nav-more" className="nav-more">
        <ul>
          {items
            .filter((i) => !i.primary)
            .map((i) => (
              <NavLink key={i.to} item={i} path={path} />
            ))}
        </ul>
        <div className="account">
          <span className="muted small" title="Signed in">
            {session?.username}
          </span>
          <button
            type="button"
            className="icon-button"
            aria-label="Sign out"
            title="Sign out"
            onClick={() => void signOut(api)}
          >
            <Icon name="logout" />
          </button>
        </div>
      </div>
    </nav>
  );
}

function Toast() {
  const { toast } = useApp();
  return toast ? (
    <div className="toast" role="status">
      {toast}
    </div>
  ) : null;
}

function Shell() {
  const { session, readOnly } = useApp();
  if (!session)
    return (
      <>
        <LoginView />
        <Toast />
      </>
    );
  return (
    <ClusterProvider>
      <PlaylistsProvider>
        <PlayerProvider>
          <div className="shell">
            <a href="#main" className="skip-link">
              Skip to content
            </a>
            <Navigation />
            <div className="content">
              {readOnly && (
                <div className="banner" role="alert">
                  The catalog is read-only right now: this part of the cluster has no quorum. You
                  can browse and play; changes will work again once a majority of nodes is back.
                </div>
              )}
              <main id="main" tabIndex={-1}>
                <CurrentView />
              </main>
            </div>
            <PlayerBar />
            <Toast />
          </div>
        </PlayerProvider>
      </PlaylistsProvider>
    </ClusterProvider>
  );
}

export function App({ api }: { api: ApiClient }) {
  return (
    <AppProvider api={api}>
      <RouterProvider>
        <Shell />
      </RouterProvider>
    </AppProvider>
  );
}
