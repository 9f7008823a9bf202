// The app shell: sign-in gate, navigation, the current view, the read-only banner and the
// player bar (which stays mounted, so music keeps playing across views).
import type { ReactElement } from "react";
import type { ApiClient } from "./api/client";
import { AppProvider, useApp } from "./app/context";
import { PlaylistsProvider } from "./app/playlists";
import { Link, matchPath, RouterProvider, useRouter } from "./app/router";
import { ClusterProvider } from "./cluster/ClusterProvider";
import { Icon } from "./components/Icon";
import { PlayerBar, PlayerProvider } from "./player/Player";
import { AlbumsView } from "./views/AlbumsView";
import { AlbumView } from "./views/AlbumView";
import { ArtistsView, ArtistView } from "./views/ArtistsView";
import { DashboardView } from "./views/DashboardView";
import { LoginView } from "./views/LoginView";
import { PlaylistsView, PlaylistView } from "./views/PlaylistsView";
import { LikedView, SongsView } from "./views/SongsView";
import { UploadView } from "./views/UploadView";
import { Empty } from "./components/States";

const NAV: [string, string, string][] = [
  ["/", "Albums", "album"],
  ["/artists", "Artists", "artist"],
  ["/songs", "Songs", "songs"],
  ["/likes", "Liked", "heart-filled"],
  ["/playlists", "Playlists", "playlist"],
  ["/upload", "Upload", "upload"],
  ["/cluster", "Cluster", "cluster"],
];

function CurrentView() {
  const { path } = useRouter();
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
    ["/cluster", () => <DashboardView />],
  ];
  for (const [pattern, render] of routes) {
    const params = matchPath(pattern, path);
    if (params) return render(params);
  }
  return (
    <Empty>
      Nothing here. <Link to="/">Back to the library</Link>.
    </Empty>
  );
}

function Shell() {
  const { session, readOnly, toast, api } = useApp();
  const { path } = useRouter();
  if (!session) return <LoginView />;
  return (
    <ClusterProvider>
      <PlaylistsProvider>
        <PlayerProvider>
          <div className="shell">
            <a href="#main" className="skip-link">
              Skip to content
            </a>
            <nav className="sidebar" aria-label="Main">
              <div className="brand">
                <img src="/favicon.svg" alt="" width={28} height={28} /> <span>dspot</span>
              </div>
              <ul>
                {NAV.map(([to, label, icon]) => {
                  const active =
                    to === "/" ? path === "/" || path.startsWith("/albums") : path.startsWith(to);
                  return (
                    <li key={to}>
                      <Link to={to} className={active ? "active" : ""}>
                        <Icon name={icon} /> <span>{label}</span>
                      </Link>
                    </li>
                  );
                })}
              </ul>
              <div className="account">
                <span className="muted small" title="Signed in">
                  {session.username}
                </span>
                <button
                  type="button"
                  className="icon-button"
                  aria-label="Sign out"
                  onClick={() => api.logout()}
                >
                  <Icon name="logout" />
                </button>
              </div>
            </nav>
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
            {toast && (
              <div className="toast" role="status">
                {toast}
              </div>
            )}
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
