// The JSON shapes of the service's HTTP API, by their friendly names. Every shape comes from
// ./schema.ts, which `npm run api-types` generates from ./openapi.json, the OpenAPI document
// the service generates from its attrs classes (`dspot-spotify openapi`); nothing here is
// written by hand but the aliases.
import type { components } from "./schema";

type Schemas = components["schemas"];

/** One page of a listing (`GET /api/songs`, `/api/albums`, ...), over items of type T. */
export type Page<T> = Omit<Schemas["SongPage"], "items"> & { items: T[] };

/** A song; an upload of bytes the catalog already had answers a `DuplicateSong`. */
export type Song = Schemas["Song"] & { duplicate?: Schemas["DuplicateSong"]["duplicate"] };
export type Artist = Schemas["Artist"];
export type Album = Schemas["Album"];
export type Genre = Schemas["Genre"];
export type AlbumDetail = Schemas["AlbumDetail"];
export type ArtistDetail = Schemas["ArtistDetail"];
export type Playlist = Schemas["Playlist"];
export type PlaylistItem = Schemas["PlaylistItem"];
export type PlaylistDetail = Schemas["PlaylistDetail"];
export type Session = Schemas["Session"];
/** `GET /api/me`: who I am (`"admin"` in `roles`: an admin). */
export type Me = Schemas["Me"];
/** `GET /api/me/subsonic` and `POST /api/me/subsonic/rotate`: my Subsonic app credentials. */
export type SubsonicCredentials = Schemas["SubsonicCredentials"];
/** One row of `GET /api/users` (admins). */
export type UserRow = Schemas["UserRow"];
export type UserList = Schemas["UserList"];
/** `PATCH /api/users/{id}`: a field left out stays as it is. */
export type UserPatch = Schemas["UserPatch"];
/** `GET` / `PATCH /api/settings`: the cluster's settings. */
export type ServerSettings = Schemas["ServerSettings"];
export type Member = Schemas["Member"];
export type MemberState = Member["state"];
export type UnderReplicated = Schemas["UnderReplicated"];
export type Cluster = Schemas["Cluster"];
export type Replicas = Schemas["Replicas"];
/** One message of the `/api/events` WebSocket. */
export type ClusterEvent = Schemas["ClusterEvent"];
