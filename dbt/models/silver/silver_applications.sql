{{
    config(
        unique_key='id_solicitacao',
        properties={"partitioning": "ARRAY['month(data_solicitacao)']"},
    )
}}

{#-
    One row per application: typed, flat, deduplicated, pseudonymized and enriched.
    Incremental runs read only bronze rows ingested after silver's newest `ingested_at`.
    A duplicate (Kafka delivers at least once) is the same event key seen again: the copy with
    the earliest Kafka offset wins, within a batch and across batches (macro first_arrival).
-#}

with

bronze_applications as (

    select * from {{ source('bronze', 'applications') }}

),

first_arrivals as (

    {{ first_arrival('bronze_applications') }}

),

flattened as (

    select
        event_key as id_solicitacao,
        proponente_id,
        {{ epoch_ms_to_timestamp('data_solicitacao') }} as data_solicitacao,
        {{ pseudonymize_tax_id('cpf_cnpj') }} as cpf_cnpj_hash,
        {{ pseudonymize('nome_razao_social') }} as nome_hash,
        {{ is_valid_tax_id('cpf_cnpj', 'tipo_pessoa') }} as cpf_cnpj_valido,
        tipo_pessoa,
        renda_bruta_anual_declarada,
        valor_solicitado_credito,
        finalidade_credito,
        localizacao_propriedade.latitude as latitude,
        localizacao_propriedade.longitude as longitude,
        nullif(trim(localizacao_propriedade.municipio), '') as municipio,
        nullif(trim(localizacao_propriedade.uf), '') as uf,
        area_total_hectares,
        cultura_principal,
        possui_experiencia_atividade,
        anos_experiencia,
        fontes_dados_adicionais.serasa_score as serasa_score,
        fontes_dados_adicionais.ibama_autuacoes_ativas as ibama_autuacoes_ativas,
        {{ pseudonymize('fontes_dados_adicionais.numero_matricula_imovel') }} as matricula_hash,
        prazo_meses,
        metadata_evento.versao_schema as versao_schema,
        metadata_evento.origem_dados as origem_dados,
        {{ epoch_ms_to_timestamp('metadata_evento.timestamp_geracao_evento') }}
            as evento_gerado_em,
        schema_version,
        kafka_partition,
        kafka_offset,
        ingested_at
    from first_arrivals

),

enriched as (

    select
        *,
        {{ classificacao_propriedade('area_total_hectares') }} as classificacao_propriedade,
        {{ faixa_risco_credito('serasa_score') }} as faixa_risco_credito,
        coalesce(
            cpf_cnpj_valido
            and valor_solicitado_credito > 0
            and area_total_hectares > 0
            and uf is not null,
            false
        ) as registro_valido
    from flattened

),

final as (

    select
        id_solicitacao,
        proponente_id,
        data_solicitacao,
        cpf_cnpj_hash,
        nome_hash,
        tipo_pessoa,
        renda_bruta_anual_declarada,
        valor_solicitado_credito,
        finalidade_credito,
        latitude,
        longitude,
        municipio,
        uf,
        area_total_hectares,
        cultura_principal,
        possui_experiencia_atividade,
        anos_experiencia,
        serasa_score,
        ibama_autuacoes_ativas,
        matricula_hash,
        prazo_meses,
        versao_schema,
        origem_dados,
        evento_gerado_em,
        schema_version,
        classificacao_propriedade,
        faixa_risco_credito,
        cpf_cnpj_valido,
        registro_valido,
        kafka_partition,
        kafka_offset,
        ingested_at,
        {{ loaded_at_now() }} as _loaded_at
    from enriched

)

select * from final
