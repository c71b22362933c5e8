-- Run once by the postgres image on an empty data volume (docker-entrypoint-initdb.d), as
-- POSTGRES_USER, which therefore owns both databases. Changing this file later has no effect on an
-- existing volume: create the database by hand or drop the volume (docker compose down -v).

-- Iceberg JDBC catalog behind the REST catalog (iceberg-rest: CATALOG_URI).
CREATE DATABASE iceberg;

-- MLflow tracking server backend store: runs, metrics, model registry (mlflow: backend store URI).
CREATE DATABASE mlflow;
