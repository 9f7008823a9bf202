// The player: one <audio> element for the whole app (so music keeps playing while the user
// browses), the queue (kept across reloads: useSavedQueue.ts), the Media Session (OS and
// keyboard media keys), the tab title and the bar at the bottom of the screen.
import {
  createContext,
  useCallback,
  useContext,
  useEffect,
  useReducer,
  useRef,
  useState,
  type ReactNode,
} from "react";
import { useMemoObject } from "../app/memo";
import { useApp } from "../app/context";
import { Link } from "../app/router";
import type { Song } from "../api/types";
import { Cover } from "../components/Cover";
import { formatDuration } from "../components/format";
import { Icon } from "../components/Icon";
import {
  currentSong,
  hasNext,
  hasPrevious,
  queueReducer,
  type QueueAction,
  type QueueState,
} from "./queue";
import { initialQueue, useSavedQueue } from "./useSavedQueue";

/** The tab title when nothing plays. */
export const APP_TITLE = "dspot";

interface PlayerValue {
  queue: QueueState;
  dispatch: (a: QueueAction) => void;
  song: Song | null;
  playing: boolean;
  time: number;
  duration: number;
  volume: number;
  buffering: boolean;
  error: string | null;
  play: (songs: Song[], start?: number) => void;
  toggle: () => void;
  seek: (t: number) => void;
  next: () => void;
  previous: () => void;
  setVolume: (v: number) => void;
}

const PlayerContext = createContext<PlayerValue | null>(null);

export function usePlayer(): PlayerValue {
  const v = useContext(PlayerContext);
  if (!v) throw new Error("usePlayer outside PlayerProvider");
  return v;
}

const RETRIES = 3;

export function PlayerProvider({ children }: { children: ReactNode }) {
  const { api, session } = useApp();
  const userId = session?.user_id ?? null;
  const [start] = useState(() => initialQueue(userId));
  const [queue, rawDispatch] = useReducer(queueReducer, start.queue);
  // A track start that does not play: the restored queue's, paused where it was left.
  const resume = useRef<{ serial: number; position: number } | null>(
    start.queue.index >= 0 ? { serial: start.queue.serial, position: start.position } : null,
  );
  const touched = useRef(false);
  const dispatch = useCallback((a: QueueAction) => {
    touched.current = true;
    rawDispatch(a);
  }, []);
  const audio = useRef<HTMLAudioElement>(null);
  const [playing, setPlaying] = useState(false);
  const [time, setTime] = useState(0);
  const [duration, setDuration] = useState(0);
  const [buffering, setBuffering] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [volume, setVolumeState] = useState(() => {
    const v = Number(localStorage.getItem("dspot.volume"));
    return Number.isFinite(v) && v > 0 && v <= 1 ? v : 0.8;
  });
  const recorded = useRef(-1);
  const retries = useRef(0);
  const song = currentSong(queue);

  // A new track (or the same one restarted): point the element at its stream and play.
  useEffect(() => {
    const a = audio.current;
    if (!a) return;
    setError(null);
    retries.current = 0;
    if (!song) {
      a.pause();
      a.removeAttribute("src");
      a.load();
      setTime(0);
      setDuration(0);
      return;
    }
    a.src = api.mediaUrl(song.id, "stream");
    setDuration(song.duration);
    const r = resume.current;
    if (r && r.serial === queue.serial) {
      a.currentTime = r.position; // before the metadata: where loading starts
      setTime(r.position);
      return;
    }
    setTime(0);
    a.play().catch(() => setPlaying(false));
  }, [queue.serial, api]);

  const queueRef = useRef(queue);
  queueRef.current = queue;
  const onTimeSaved = useSavedQueue({
    api,
    userId,
    queue,
    playing,
    position: () => audio.current?.currentTime ?? 0,
    savedAt: start.savedAt,
    savedPosition: start.position,
    touched: () => touched.current,
    adopt: (songs, index, position) => {
      resume.current = { serial: queueRef.current.serial + 1, position };
      rawDispatch({ type: "play", songs, start: index });
    },
  });

  // The tab says what plays.
  useEffect(() => {
    document.title = playing && song ? `${song.title} · ${song.artist_name}` : APP_TITLE;
  }, [playing, song]);
  useEffect(
    () => () => {
      document.title = APP_TITLE;
    },
    [],
  );

  useEffect(() => {
    if (audio.current) audio.current.volume = volume;
    localStorage.setItem("dspot.volume", String(volume));
  }, [volume]);

  const toggle = useCallback(() => {
    const a = audio.current;
    if (!a || !song) return;
    if (a.paused) a.play().catch(() => {});
    else a.pause();
  }, [song]);

  const seek = useCallback((t: number) => {
    const a = audio.current;
    if (!a || !Number.isFinite(t)) return;
    a.currentTime = Math.max(0, t);
    setTime(a.currentTime);
  }, []);

  const next = useCallback(() => dispatch({ type: "next" }), []);
  const previous = useCallback(() => {
    const a = audio.current;
    // Like every music player: "previous" restarts the song unless it has only just begun.
    if (a && (a.currentTime > 3 || !hasPrevious(queue))) seek(0);
    else dispatch({ type: "previous" });
  }, [queue, seek]);

  const play = useCallback(
    (songs: Song[], start = 0) => dispatch({ type: "play", songs, start }),
    [],
  );

  // Space plays or pauses, unless the user is typing or on a control of its own.
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => {
      if (e.key !== " " || e.ctrlKey || e.metaKey || e.altKey) return;
      const t = e.target as HTMLElement | null;
      if (t && t.closest("input, textarea, select, button, a, [contenteditable]")) return;
      e.preventDefault();
      toggle();
    };
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [toggle]);

  // Media Session: what the OS shows, and the media keys.
  useEffect(() => {
    if (!("mediaSession" in navigator) || typeof MediaMetadata === "undefined") return;
    const ms = navigator.mediaSession;
    ms.metadata = song
      ? new MediaMetadata({
          title: song.title,
          artist: song.artist_name,
          album: song.album_title ?? "",
          artwork: song.cover_sha256
            ? [{ src: api.mediaUrl(song.id, "cover"), sizes: "512x512" }]
            : [],
        })
      : null;
    const handlers: [MediaSessionAction, MediaSessionActionHandler | null][] = [
      ["play", () => void audio.current?.play().catch(() => {})],
      ["pause", () => audio.current?.pause()],
      ["previoustrack", hasPrevious(queue) ? previous : null],
      ["nexttrack", hasNext(queue) ? next : null],
      ["seekto", (d) => d.seekTime !== undefined && seek(d.seekTime)],
      ["seekbackward", (d) => seek((audio.current?.currentTime ?? 0) - (d.seekOffset ?? 10))],
      ["seekforward", (d) => seek((audio.current?.currentTime ?? 0) + (d.seekOffset ?? 10))],
    ];
    for (const [action, handler] of handlers) {
      try {
        ms.setActionHandler(action, handler);
      } catch {
        // an action this browser does not know
      }
    }
  }, [song, queue, api, next, previous, seek]);

  useEffect(() => {
    if ("mediaSession" in navigator)
      navigator.mediaSession.playbackState = song ? (playing ? "playing" : "paused") : "none";
  }, [playing, song]);

  const onPlaying = () => {
    touched.current = true;
    setPlaying(true);
    setBuffering(false);
    retries.current = 0;
    if (song && recorded.current !== queue.serial) {
      recorded.current = queue.serial;
      api.post(`/api/songs/${song.id}/plays`).catch(() => {});
    }
  };

  const onError = () => {
    const a = audio.current;
    if (!a || !song) return;
    // A stream cut short (a node died and the gateway could not continue it): ask again from
    // where we were; the gateway picks a live node.
    if (retries.current < RETRIES) {
      retries.current += 1;
      const at = a.currentTime;
      setTimeout(() => {
        if (!audio.current) return;
        audio.current.src = api.mediaUrl(song.id, "stream");
        audio.current.currentTime = at;
        audio.current.play().catch(() => {});
      }, 500 * retries.current);
      return;
    }
    setPlaying(false);
    setError("This song cannot be played right now.");
  };

  const value = useMemoObject({
    queue,
    dispatch,
    song,
    playing,
    time,
    duration,
    volume,
    buffering,
    error,
    play,
    toggle,
    seek,
    next,
    previous,
    setVolume: setVolumeState,
  });

  return (
    <PlayerContext.Provider value={value}>
      {children}
      <audio
        ref={audio}
        preload="auto"
        data-testid="audio"
        onPlaying={onPlaying}
        onPause={() => setPlaying(false)}
        onWaiting={() => setBuffering(true)}
        onTimeUpdate={(e) => {
          setTime(e.currentTarget.currentTime);
          onTimeSaved();
        }}
        onDurationChange={(e) =>
          Number.isFinite(e.currentTarget.duration) && setDuration(e.currentTarget.duration)
        }
        onEnded={() => (hasNext(queue) ? dispatch({ type: "next" }) : setPlaying(false))}
        onError={onError}
      />
    </PlayerContext.Provider>
  );
}

export function PlayerBar() {
  const { liked, toggleLike } = useApp();
  const p = usePlayer();
  const [showQueue, setShowQueue] = useState(false);
  const song = p.song;
  return (
    <footer className="player" aria-label="Player">
      <div className="player-track">
        {song ? (
          <>
            <Cover
              songId={song.id}
              hasCover={!!song.cover_sha256}
              title={song.album_title ?? song.title}
              size="small"
            />
            <div className="player-names">
              <div className="player-title" data-testid="now-playing">
                {song.title}
              </div>
              <div className="player-artist">
                <Link to={`/artists/${song.artist_id}`}>{song.artist_name}</Link>
              </div>
            </div>
            <button
              type="button"
              className={`icon-button like ${liked.has(song.id) ? "on" : ""}`}
              aria-label="Like"
              aria-pressed={liked.has(song.id)}
              onClick={() => void toggleLike(song)}
            >
              <Icon name={liked.has(song.id) ? "heart-filled" : "heart"} />
            </button>
          </>
        ) : (
          <div className="player-idle">Pick a song to play</div>
        )}
      </div>
      <div className="player-center">
        <div className="player-buttons">
          <button
            type="button"
            className="icon-button"
            aria-label="Previous"
            onClick={p.previous}
            disabled={!song}
          >
            <Icon name="previous" />
          </button>
          <button
            type="button"
            className="play-button"
            aria-label={p.playing ? "Pause" : "Play"}
            onClick={p.toggle}
            disabled={!song}
          >
            <Icon name={p.playing ? "pause" : "play"} />
          </button>
          <button
            type="button"
            className="icon-button"
            aria-label="Next"
            onClick={p.next}
            disabled={!hasNext(p.queue)}
          >
            <Icon name="next" />
          </button>
        </div>
        <div className="player-seek">
          <span className="time" aria-hidden="true">
            {formatDuration(p.time)}
          </span>
          <input
            type="range"
            aria-label="Seek"
            min={0}
            max={Math.max(p.duration, 0.1)}
            step={0.1}
            value={Math.min(p.time, p.duration || 0)}
            aria-valuetext={`${formatDuration(p.time)} of ${formatDuration(p.duration)}`}
            onChange={(e) => p.seek(Number(e.target.value))}
            disabled={!song}
          />
          <span className="time" aria-hidden="true">
            {formatDuration(p.duration)}
          </span>
        </div>
        {p.error && (
          <div className="player-error" role="alert">
            {p.error}
          </div>
        )}
        {p.buffering && p.playing && (
          <div className="sr-only" role="status">
            Buffering
          </div>
        )}
      </div>
      <div className="player-extra">
        <button
          type="button"
          className={`icon-button ${showQueue ? "on" : ""}`}
          aria-label="Queue"
          aria-expanded={showQueue}
          onClick={() => setShowQueue((s) => !s)}
        >
          <Icon name="queue" />
        </button>
        <button
          type="button"
          className="icon-button"
          aria-label={p.volume === 0 ? "Unmute" : "Mute"}
          onClick={() => p.setVolume(p.volume === 0 ? 0.8 : 0)}
        >
          <Icon name={p.volume === 0 ? "muted" : "volume"} />
        </button>
        <input
          type="range"
          className="volume"
          aria-label="Volume"
          min={0}
          max={1}
          step={0.01}
          value={p.volume}
          onChange={(e) => p.setVolume(Number(e.target.value))}
        />
      </div>
      {showQueue && <QueuePanel onClose={() => setShowQueue(false)} />}
    </footer>
  );
}

function QueuePanel({ onClose }: { onClose: () => void }) {
  const { queue, dispatch } = usePlayer();
  useEffect(() => {
    const onKey = (e: KeyboardEvent) => e.key === "Escape" && onClose();
    window.addEventListener("keydown", onKey);
    return () => window.removeEventListener("keydown", onKey);
  }, [onClose]);
  return (
    <section className="queue-panel" aria-label="Queue">
      <div className="queue-head">
        <h2>Queue</h2>
        <button
          type="button"
          className="text-button"
          onClick={() => dispatch({ type: "clear" })}
          disabled={queue.items.length === 0}
        >
          Clear
        </button>
        <button type="button" className="icon-button" aria-label="Close queue" onClick={onClose}>
          <Icon name="close" />
        </button>
      </div>
      {queue.items.length === 0 ? (
        <p className="empty">The queue is empty.</p>
      ) : (
        <ol className="queue-list">
          {queue.items.map((s, i) => (
            <li
              key={`${s.id}-${i}`}
              className={i === queue.index ? "current" : ""}
              aria-current={i === queue.index ? "true" : undefined}
            >
              <button
                type="button"
                className="queue-song"
                aria-label={`Play ${s.title} from the queue`}
                onClick={() => dispatch({ type: "jump", index: i })}
              >
                <span className="queue-title">{s.title}</span>
                <span className="queue-artist">{s.artist_name}</span>
              </button>
              <button
                type="button"
                className="icon-button small"
                aria-label={`Move ${s.title} up in the queue`}
                disabled={i === 0}
                onClick={() => dispatch({ type: "move", from: i, to: i - 1 })}
              >
                <Icon name="up" />
              </button>
              <button
                type="button"
                className="icon-button small"
                aria-label={`Move ${s.title} down in the queue`}
                disabled={i === queue.items.length - 1}
                onClick={() => dispatch({ type: "move", from: i, to: i + 1 })}
              >
                <Icon name="down" />
              </button>
              <button
                type="button"
                className="icon-button small"
                aria-label={`Remove ${s.title} from the queue`}
                onClick={() => dispatch({ type: "remove", index: i })}
              >
                <Icon name="close" />
              </button>
            </li>
          ))}
        </ol>
      )}
    </section>
  );
}
