// The cluster as the app knows it: the /api/cluster document, refreshed now and then and kept
// current by the live events, and what those events said over time (activity.ts). It also
// drives the read-only banner (no quorum).
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useRef,
  useState,
  type ReactNode,
} from "react";
import { ApiError, asApiError } from "../api/client";
import type { Cluster } from "../api/types";
import { useApp } from "../app/context";
import { noActivity, noteEvent, type Activity } from "./activity";
import { applyClusterEvent } from "./state";
import { LiveEvents, type LiveStatus } from "./live";

interface ClusterValue {
  cluster: Cluster | null;
  activity: Activity;
  error: ApiError | null;
  live: LiveStatus;
  refresh: () => void;
  /** Ask for frequent refreshes (the dashboard is shown); returns the undo. */
  watch: () => () => void;
}

const ClusterContext = createContext<ClusterValue>({
  cluster: null,
  activity: noActivity,
  error: null,
  live: "closed",
  refresh: () => {},
  watch: () => () => {},
});

// The events keep states, token and quorum current; the refresh brings the figures events do
// not carry (blob counts, other nodes' log positions, under-replicated songs).
const WATCHED_REFRESH_MS = 5000;
const IDLE_REFRESH_MS = 30000;

export function ClusterProvider({ children }: { children: ReactNode }) {
  const { api, session, setReadOnly } = useApp();
  const [cluster, setCluster] = useState<Cluster | null>(null);
  const [activity, setActivity] = useState<Activity>(noActivity);
  const [error, setError] = useState<ApiError | null>(null);
  const [live, setLive] = useState<LiveStatus>("closed");
  const inflight = useRef(false);
  const [watchers, setWatchers] = useState(0);
  const watch = useCallback(() => {
    setWatchers((n) => n + 1);
    return () => setWatchers((n) => n - 1);
  }, []);

  const refresh = useCallback(() => {
    if (inflight.current) return;
    inflight.current = true;
    api
      .get<Cluster>("/api/cluster")
      .then(
        (c) => {
          setCluster(c);
          setError(null);
        },
        (e: unknown) => setError(asApiError(e)),
      )
      .finally(() => {
        inflight.current = false;
      });
  }, [api]);

  useEffect(() => {
    if (!session) {
      setCluster(null);
      return;
    }
    refresh();
    const events = new LiveEvents({
      url: () => api.eventsUrl(),
      onEvent: (e) => {
        setCluster((c) => applyClusterEvent(c, e));
        setActivity((a) => noteEvent(a, e, Date.now()));
      },
      onStatus: setLive,
    });
    events.start();
    return () => events.stop();
  }, [api, session, refresh]);

  useEffect(() => {
    if (!session) return;
    if (watchers > 0) refresh();
    const timer = setInterval(refresh, watchers > 0 ? WATCHED_REFRESH_MS : IDLE_REFRESH_MS);
    return () => clearInterval(timer);
  }, [session, watchers, refresh]);

  const quorum = cluster?.quorum;
  useEffect(() => {
    if (quorum !== undefined) setReadOnly(!quorum);
  }, [quorum, setReadOnly]);

  return (
    <ClusterContext.Provider value={{ cluster, activity, error, live, refresh, watch }}>
      {children}
    </ClusterContext.Provider>
  );
}

export function useCluster(): ClusterValue {
  return useContext(ClusterContext);
}
