"""Minimal FastAPI + fastapi-users app: register, login (JWT bearer), me.

Follows fastapi-users' documented SQLAlchemy + JWT-bearer setup ("Full example", SQLAlchemy),
trimmed to what the benchmark uses. Password hashing is fastapi-users' default PasswordHelper
(pwdlib: Argon2Hasher first, i.e. argon2-cffi's defaults; BcryptHasher only to verify old hashes).

Settings (environment):
  DATABASE_URL  SQLAlchemy async URL: sqlite+aiosqlite:///path/to/peer.db (default ./peer.db) or
                postgresql+asyncpg://user@host:port/db. The engine keeps SQLAlchemy's defaults
                (pool of 5 + 10 overflow per worker), as the fastapi-users example does.
  PEER_DB       SQLite file path, used only when DATABASE_URL is not set (older scripts)
  PEER_SECRET   JWT secret
"""
import os
import uuid
from collections.abc import AsyncGenerator
from contextlib import asynccontextmanager

from fastapi import Depends, FastAPI
from fastapi_users import BaseUserManager, FastAPIUsers, UUIDIDMixin, schemas
from fastapi_users.authentication import AuthenticationBackend, BearerTransport, JWTStrategy
from fastapi_users.db import SQLAlchemyBaseUserTableUUID, SQLAlchemyUserDatabase
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import DeclarativeBase

DATABASE_URL = os.environ.get("DATABASE_URL") or "sqlite+aiosqlite:///" + os.environ.get("PEER_DB", "./peer.db")
SECRET = os.environ.get("PEER_SECRET", "bench-python-peer-secret-0123456789abcdefghij")


class Base(DeclarativeBase):
    pass


class User(SQLAlchemyBaseUserTableUUID, Base):
    pass


class UserRead(schemas.BaseUser[uuid.UUID]):
    pass


class UserCreate(schemas.BaseUserCreate):
    pass


engine = create_async_engine(DATABASE_URL)
async_session_maker = async_sessionmaker(engine, expire_on_commit=False)


async def get_async_session() -> AsyncGenerator[AsyncSession, None]:
    async with async_session_maker() as session:
        yield session


async def get_user_db(session: AsyncSession = Depends(get_async_session)):
    yield SQLAlchemyUserDatabase(session, User)


class UserManager(UUIDIDMixin, BaseUserManager[User, uuid.UUID]):
    reset_password_token_secret = SECRET
    verification_token_secret = SECRET


async def get_user_manager(user_db: SQLAlchemyUserDatabase = Depends(get_user_db)):
    yield UserManager(user_db)


bearer_transport = BearerTransport(tokenUrl="auth/jwt/login")


def get_jwt_strategy() -> JWTStrategy:
    return JWTStrategy(secret=SECRET, lifetime_seconds=3600)


auth_backend = AuthenticationBackend(
    name="jwt", transport=bearer_transport, get_strategy=get_jwt_strategy
)
fastapi_users = FastAPIUsers[User, uuid.UUID](get_user_manager, [auth_backend])


@asynccontextmanager
async def lifespan(app: FastAPI):
    # Each worker runs this; create_all only creates missing tables.
    async with engine.begin() as conn:
        await conn.run_sync(Base.metadata.create_all)
    yield


app = FastAPI(lifespan=lifespan)
app.include_router(fastapi_users.get_auth_router(auth_backend), prefix="/auth/jwt", tags=["auth"])
app.include_router(
    fastapi_users.get_register_router(UserRead, UserCreate), prefix="/auth", tags=["auth"]
)
app.include_router(fastapi_users.get_users_router(UserRead, UserCreate), prefix="/users", tags=["users"])
