// The JSON shapes of the service's HTTP API (see examples/spotify/src/dspot_spotify/api.py).

export interface Page<T> {
  items: T[];
  page: number;
  limit: number;
  total: number;
}

export interface Song {
  id: string;
  title: string;
  artist_id: string;
  artist_name: string;
  album_id: string | null;
  album_title: string | null;
  track: number | null;
  year: number | null;
  genres: string[];
  duration: number;
  blob_sha256: string;
  mime: string;
  size: number;
  cover_sha256: string | null;
  play_count: number;
  like_count: number;
  created_by: string | null;
  created_at: number;
  /** Play count as answered by `POST /api/songs/{id}/plays` (same as `play_count`). */
  plays?: number;
  /** Set on an upload whose bytes the catalog already had. */
  duplicate?: boolean;
}

export interface Artist {
  id: string;
  name: string;
  album_count: number;
  song_count: number;
}

export interface Album {
  id: string;
  title: string;
  artist_id: string;
  artist_name: string;
  year: number | null;
  cover_sha256: string | null;
  song_count: number;
  duration: number;
}

/** One row of `GET /api/genres`: a genre and how many songs carry it. */
export interface Genre {
  genre: string;
  songs: number;
}

export interface AlbumDetail extends Album {
  tracks: Song[];
}

export interface ArtistDetail extends Artist {
  albums: Album[];
  singles: Song[];
}

export interface Playlist {
  id: string;
  owner_id: string;
  name: string;
  song_count: number;
  duration: number;
  created_at: number;
  updated_at: number;
}

export interface PlaylistItem {
  item_id: string;
  position: number;
  song: Song;
}

export interface PlaylistDetail extends Playlist {
  items: PlaylistItem[];
}

export interface Session {
  token: string;
  user_id: string;
  username: string;
  role?: string;
}

export type MemberState = "alive" | "suspect" | "dead" | "left";

export interface Member {
  id: string;
  address: string;
  http: string | null;
  state: MemberState;
  role: "voter" | "observer";
  incarnation: number;
  log_position: string | null;
  blobs: number | null;
  bytes: number | null;
}

export interface UnderReplicated {
  id: string;
  title: string;
  copies: number;
  wanted: number;
}

export interface Cluster {
  node: string;
  quorum: boolean;
  log_position: string;
  token: { holder: string | null; epoch: number };
  ring: string[];
  replication: number;
  members: Member[];
  songs: number;
  under_replicated: number;
  under_replicated_songs: UnderReplicated[];
}

export interface Replicas {
  song_id: string;
  sha256: string;
  wanted: number;
  replicas: { node: string; state: MemberState; has: boolean }[];
}

export type ClusterEvent =
  | { type: "hello"; node: string; cluster: Cluster }
  | {
      type: "membership";
      event: "joined" | "suspect" | "alive" | "dead" | "left" | "updated";
      member: Member;
    }
  | { type: "token"; holder: string | null; epoch: number }
  | { type: "catalog"; position: string; kind: string }
  | { type: "quorum"; quorum: boolean };
