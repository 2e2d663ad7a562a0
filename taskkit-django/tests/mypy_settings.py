"""Django settings for mypy's django-stubs plugin (type checking only)."""

DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}}
INSTALLED_APPS = [
    "django.contrib.contenttypes",
    "django.contrib.auth",
    "django.contrib.admin",
    "taskkit_django",
]
USE_TZ = True
