// Album art. The cover endpoint is per song, so an album's cover is fetched through one of
// its tracks (looked up once per album and remembered).
import { useEffect, useState } from "react";
import { useApp } from "../app/context";
import type { ApiClient } from "../api/client";
import type { Page, Song } from "../api/types";

const albumTrack = new Map<string, Promise<string | null>>();

function firstTrack(api: ApiClient, albumId: string): Promise<string | null> {
  let p = albumTrack.get(albumId);
  if (!p) {
    p = api
      .get<Page<Song>>("/api/songs", { album: albumId, limit: 1 })
      .then((page) => page.items[0]?.id ?? null)
      .catch(() => {
        albumTrack.delete(albumId);
        return null;
      });
    albumTrack.set(albumId, p);
  }
  return p;
}

function hue(text: string): number {
  let h = 0;
  for (const c of text) h = (h * 31 + c.charCodeAt(0)) % 360;
  return h;
}

interface CoverProps {
  title: string;
  hasCover: boolean;
  songId?: string | null;
  albumId?: string | null;
  size?: "small" | "medium" | "large";
}

export function Cover({ title, hasCover, songId, albumId, size = "medium" }: CoverProps) {
  const { api } = useApp();
  const [track, setTrack] = useState<string | null>(songId ?? null);
  const [failed, setFailed] = useState(false);
  useEffect(() => {
    setFailed(false);
    if (songId) {
      setTrack(songId);
      return;
    }
    setTrack(null);
    if (!hasCover || !albumId) return;
    let live = true;
    void firstTrack(api, albumId).then((id) => live && setTrack(id));
    return () => {
      live = false;
    };
  }, [api, songId, albumId, hasCover]);
  const className = `cover cover-${size}`;
  if (hasCover && track && !failed) {
    return (
      <img
        className={className}
        src={api.mediaUrl(track, "cover")}
        alt={`Cover of ${title}`}
        loading="lazy"
        onError={() => setFailed(true)}
      />
    );
  }
  const h = hue(title);
  return (
    <div
      className={`${className} cover-placeholder`}
      role="img"
      aria-label={`Cover of ${title}`}
      style={{
        background: `linear-gradient(135deg, hsl(${h} 55% 38%), hsl(${(h + 60) % 360} 45% 18%))`,
      }}
    >
      <span aria-hidden="true">{title.slice(0, 1).toUpperCase()}</span>
    </div>
  );
}
